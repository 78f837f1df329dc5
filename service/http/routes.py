"""The frontend API: one small handler per onboarding step, each answering an OnboardingState."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec

from service.http.auth import Authenticator
from service.http.conditional import conditional
from service.http.problems import PROBLEM_JSON, Problem
from service.onboarding.actions import OnboardingState
from service.onboarding.inputs import CodeRequest, PhoneRequest, SourceOfFundsRequest, StartRequest
from service.onboarding.user import User
from service.ops.context import note_next_action, note_user
from service.storage.limits import client_address
from service.usecases import Onboarding


async def require_user(request: Request[Any, Any, Any]) -> None:
    """Runs before the body is read, so a bad token never costs a decode or an upstream call.

    A before-request hook rather than a guard: Litestar copies the route handler for every guard call, which
    cost more than the rest of a cached read's authentication."""
    auth: Authenticator = request.app.state.auth
    user = await auth.authenticate(request.headers.get("authorization"))
    request.scope["user"] = user  # type: ignore[typeddict-unknown-key]
    note_user(user.uid)


def _user(request: Request[Any, Any, Any]) -> User:
    return request.scope["user"]  # type: ignore[return-value]


def _noted(state: OnboardingState) -> OnboardingState:
    note_next_action(state.next_action)
    return state


def _content_type(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("content-type")


def _client_ip(request: Request[Any, Any, Any]) -> str | None:
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies)


def _onboarding(request: Request[Any, Any, Any], user: NamedDependency[User]) -> Onboarding:
    # Takes `user` only to be resolved after it: Litestar resolves dependencies of one level in an anyio task
    # group, which costs more per request than both lookups together.
    del user
    return request.app.state.onboarding  # type: ignore[no-any-return]


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    common = (401, 408, 422, 429, 502, 503, 504)
    return {
        status: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_JSON, description=_DESCRIPTIONS[status], generate_examples=False
        )
        for status in sorted(set(common + statuses))
    }


_DESCRIPTIONS = {
    401: "Missing or invalid token (`unauthenticated`, nextAction `sign_in`).",
    404: "No such resource.",
    408: "The request's headers or body took longer than REQUEST_READ_TIMEOUT_SECONDS to arrive (`request_timeout`); see Retry-After.",
    409: "The step is not the current one (`step_not_available`) or the email cannot be used (`email_unavailable`).",
    413: "The request body is over 16 KiB (`payload_too_large`).",
    400: "The request body is not JSON (`malformed_body`).",
    415: "The request body is not `application/json` (`unsupported_media_type`).",
    422: "The request is not valid (`validation_failed`, `email_invalid`, `otp_format_invalid`, `otp_invalid`, `otp_expired`).",
    429: "Too many requests or wrong codes (`rate_limited`, `otp_attempts_exceeded`); see Retry-After.",
    502: "The card provider answered unexpectedly (`upstream_bad_response`).",
    503: "The card provider or sign-in is unavailable (`upstream_unavailable`); see Retry-After.",
    504: "The card provider did not answer in time (`upstream_timeout`); see Retry-After.",
}
WITH_BODY = (400, 409, 413, 415)
# The request body of each route that takes one: read by the core after the step check, documented here.
REQUEST_BODIES: dict[str, type] = {
    "startCardOnboarding": StartRequest,
    "verifyEmailCode": CodeRequest,
    "submitSourceOfFunds": SourceOfFundsRequest,
    "requestPhoneCode": PhoneRequest,
    "verifyPhoneCode": CodeRequest,
}


class OnboardingController(Controller):
    path = "/v1/card-onboarding"
    tags = ["card-onboarding"]
    before_request = require_user
    security = [{"BearerToken": []}]
    dependencies = {
        "user": Provide(_user, sync_to_thread=False),
        "onboarding": Provide(_onboarding, sync_to_thread=False),
    }

    @get("/", operation_id="getCardOnboarding", summary="The caller's current state", responses=_problems())
    async def current(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> Response[OnboardingState]:
        # The poll while KYC or the account is pending: a client that has this state gets a 304 without a body.
        return conditional(_noted(await onboarding.current(user)), request.headers.get("if-none-match"))

    @post(
        "/",
        operation_id="startCardOnboarding",
        summary="Start, or resume if already started; safe to repeat",
        status_code=200,
        responses=_problems(*WITH_BODY),
    )
    async def start(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        body = await request.body()
        return _noted(await onboarding.start(user, _content_type(request), body, _client_ip(request)))

    @post(
        "/email-verification",
        operation_id="verifyEmailCode",
        summary="Verify the emailed code",
        status_code=200,
        responses=_problems(*WITH_BODY),
    )
    async def verify_email(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        body = await request.body()
        return _noted(await onboarding.verify_email(user, _content_type(request), body))

    @post(
        "/kyc-session",
        operation_id="createKycSession",
        summary="A fresh identity-verification link",
        status_code=200,
        responses=_problems(409),
    )
    async def kyc_session(
        self, user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        return _noted(await onboarding.kyc_session(user))

    @post(
        "/source-of-funds",
        operation_id="submitSourceOfFunds",
        summary="Answer the source-of-funds questions",
        status_code=200,
        responses=_problems(*WITH_BODY),
    )
    async def source_of_funds(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        body = await request.body()
        return _noted(await onboarding.submit_source_of_funds(user, _content_type(request), body))

    @post(
        "/phone",
        operation_id="requestPhoneCode",
        summary="Send an SMS code to this phone number",
        status_code=200,
        responses=_problems(*WITH_BODY),
    )
    async def phone(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        body = await request.body()
        return _noted(await onboarding.request_phone_code(user, _content_type(request), body, _client_ip(request)))

    @post(
        "/phone-verification",
        operation_id="verifyPhoneCode",
        summary="Verify the SMS code",
        status_code=200,
        responses=_problems(*WITH_BODY),
    )
    async def verify_phone(
        self, request: Request[Any, Any, Any], user: NamedDependency[User], onboarding: NamedDependency[Onboarding]
    ) -> OnboardingState:
        body = await request.body()
        return _noted(await onboarding.verify_phone_code(user, _content_type(request), body))

    @post(
        "/card",
        operation_id="createCard",
        summary="Issue the virtual card (double submits give one card)",
        status_code=200,
        responses=_problems(409),
    )
    async def card(self, user: NamedDependency[User], onboarding: NamedDependency[Onboarding]) -> OnboardingState:
        return _noted(await onboarding.create_card(user))
