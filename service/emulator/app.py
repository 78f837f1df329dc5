"""The emulator's routes: the upstream API under /api/v1, the control plane under /_emulator, and their error bodies."""

from __future__ import annotations

import fnmatch
import re
import uuid
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import Receive, Scope, Send

from service.emulator.clock import EmulatorClock, iso
from service.emulator.config import UPSTREAM_PREFIX, EmulatorConfig, KycLinkShape
from service.emulator.faults import FaultBook, FaultInjector, FaultSpec
from service.emulator.recording import CallRecorder
from service.emulator.store import Refusal
from service.emulator.upstream import Emulator

T = TypeVar("T")


class Unauthorized(Exception):
    """No valid bearer token on an upstream route."""


# --- request bodies -------------------------------------------------------------------------------


class OnboardBody(msgspec.Struct):
    email: str | None = None
    external_customer_id: str | None = None


class OtpBody(msgspec.Struct):
    otp: str


class SourceOfFundsAnswer(msgspec.Struct):
    question: str
    answer: str


class SourceOfFundsBody(msgspec.Struct):
    answers: list[SourceOfFundsAnswer]


class PhoneRequestBody(msgspec.Struct, rename="camel"):
    phone_number: str | None = None


class PhoneVerifyBody(msgspec.Struct):
    code: str


class KycBody(msgspec.Struct):
    status: str


class AccountBody(msgspec.Struct):
    # Named after the field of Get Customer / lookup it drives.
    safe_deployed: bool


class ClockBody(msgspec.Struct, rename="camel"):
    advance_seconds: Annotated[float, msgspec.Meta(ge=0)]


class ConfigBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    kyc_auto_approve_seconds: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET
    kyc_link_shape: KycLinkShape | msgspec.UnsetType = msgspec.UNSET
    safe_deploy_seconds: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    token_ttl_seconds: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType = msgspec.UNSET
    otp_ttl_seconds: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType = msgspec.UNSET


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body if body.strip() else b"{}", type=kind)
    except msgspec.DecodeError as exc:
        raise Refusal(400, "VALIDATION_ERROR", f"Invalid request body: {exc}") from None


def _ok(message: str, data: dict[str, Any], status: int = 200) -> Response[dict[str, Any]]:
    return Response({"success": True, "message": message, "data": data}, status_code=status)


async def _authorized(request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]) -> Emulator:
    if not emulator.tokens.authenticate(request.headers.get("authorization")):
        raise Unauthorized
    return emulator


# --- upstream: auth -------------------------------------------------------------------------------


@post("/auth/token")
async def issue_token(request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    try:
        credentials = msgspec.json.decode(await request.body() or b"{}")
    except msgspec.DecodeError:
        credentials = None
    if not isinstance(credentials, dict) or not all(
        isinstance(credentials.get(field), str) and credentials[field].strip() for field in ("api_key", "api_secret")
    ):
        return Response({"success": False, "error": "Invalid, expired, or revoked API key"}, status_code=401)
    token, expires_at = emulator.tokens.issue()
    return Response(
        {
            "success": True,
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": emulator.config.token_ttl_seconds,
            "expires_at": iso(expires_at),
            "scopes": ["read", "write", "transactions"],
            "refresh_recommendation": {"refresh_before_seconds": 300, "auto_refresh_enabled": True},
        },
        status_code=200,
    )


# --- upstream: /yativo-card/customers -------------------------------------------------------------


@post("/onboard")
async def onboard(request: Request[Any, Any, Any], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), OnboardBody)
    data = core.customers.onboard(body.email, body.external_customer_id)
    return _ok("Customer card onboarding initiated. Verification code sent to customer email.", data, 201)


@post("/{yativo_card_id:str}/verify-otp")
async def verify_otp(
    yativo_card_id: FromPath[str], request: Request[Any, Any, Any], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), OtpBody)
    return _ok("Email verified successfully", core.customers.verify_otp(yativo_card_id, body.otp))


@get("/{yativo_card_id:str}/kyc-link")
async def kyc_link(yativo_card_id: FromPath[str], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    data = core.kyc.link(yativo_card_id)
    if core.config.kyc_link_shape == "kyc_url":
        return _ok("KYC link generated. Open the link to complete identity verification.", data)
    return _ok("KYC link retrieved", data)


@get("/{yativo_card_id:str}/kyc-status")
async def kyc_status(yativo_card_id: FromPath[str], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    return _ok("KYC status retrieved", core.kyc.status(yativo_card_id))


@get("/{yativo_card_id:str}/source-of-funds")
async def source_of_funds_questions(
    yativo_card_id: FromPath[str], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    # `?locale=` is accepted and ignored: labels are English only.
    return _ok("Source of Funds questions retrieved", core.questionnaire.questions(yativo_card_id))


@post("/{yativo_card_id:str}/source-of-funds", status_code=200)
async def submit_source_of_funds(
    yativo_card_id: FromPath[str], request: Request[Any, Any, Any], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), SourceOfFundsBody)
    data = core.questionnaire.submit(yativo_card_id, ((item.question, item.answer) for item in body.answers))
    return _ok("Source of Funds submitted successfully", data)


@post("/{yativo_card_id:str}/phone/request-verification", status_code=200)
async def request_phone_verification(
    yativo_card_id: FromPath[str], request: Request[Any, Any, Any], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), PhoneRequestBody)
    return _ok("Verification code sent to your phone", core.phone.request_code(yativo_card_id, body.phone_number))


@post("/{yativo_card_id:str}/phone/verify", status_code=200)
async def verify_phone(
    yativo_card_id: FromPath[str], request: Request[Any, Any, Any], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), PhoneVerifyBody)
    return _ok("Phone number verified successfully", core.phone.verify(yativo_card_id, body.code))


@post("/{yativo_card_id:str}/cards/virtual")
async def create_virtual_card(
    yativo_card_id: FromPath[str], request: Request[Any, Any, Any], core: NamedDependency[Emulator]
) -> Response[dict[str, Any]]:
    # The body is documented as `{}`; it still has to be JSON.
    _decode(await request.body(), dict)
    return _ok("Virtual card created successfully", core.cards.create_virtual(yativo_card_id), 201)


@get("/{yativo_card_id:str}/cards")
async def list_cards(yativo_card_id: FromPath[str], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    return _ok("Cards retrieved successfully", core.cards.list_for(yativo_card_id))


@post("/{yativo_card_id:str}/reset", status_code=200)
async def reset_customer(yativo_card_id: FromPath[str], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    return _ok(
        "Customer onboarding reset. Re-onboard this customer via POST /api/yativo-card/customers/onboard "
        "with a different email address.",
        core.customers.reset(yativo_card_id),
    )


# --- upstream: /card-issuer -----------------------------------------------------------------------


@get("/lookup-customer")
async def lookup_customer(request: Request[Any, Any, Any], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    return Response({"success": True, "data": core.issuer.lookup(dict(request.query_params.items()))})


@get("/customers/{customer_key:str}")
async def get_customer(customer_key: FromPath[str], core: NamedDependency[Emulator]) -> Response[dict[str, Any]]:
    return Response({"success": True, "data": core.issuer.customer(customer_key)})


# --- control plane --------------------------------------------------------------------------------


@get("/outbox")
async def read_outbox(emulator: NamedDependency[Emulator], to: FromQuery[str | None] = None) -> dict[str, Any]:
    return {"messages": msgspec.to_builtins(emulator.control.outbox(to))}


@get("/customers")
async def list_customers(emulator: NamedDependency[Emulator]) -> dict[str, Any]:
    return {"customers": emulator.control.customers()}


@post("/customers/{email:str}/kyc", status_code=200)
async def set_kyc_status(
    email: FromPath[str], request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]
) -> dict[str, Any]:
    body = _decode(await request.body(), KycBody)
    return emulator.kyc.set_status(email, body.status)


@post("/customers/{email:str}/card-status", status_code=200)
async def set_card_status(
    email: FromPath[str], request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]
) -> dict[str, Any]:
    """Freeze, unfreeze, void... the customer's card; answers the webhook event Yativo would deliver for it."""
    body = _decode(await request.body(), KycBody)
    return {"event": emulator.cards.set_status(email, body.status)}


@post("/customers/{email:str}/account", status_code=200)
async def set_account(
    email: FromPath[str], request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]
) -> dict[str, Any]:
    """Hold the customer's card wallet in deployment (card creation answers SAFE_NOT_DEPLOYED) or deploy it."""
    body = _decode(await request.body(), AccountBody)
    return emulator.cards.set_account(email, safe_deployed=body.safe_deployed)


@get("/calls")
async def read_calls(
    emulator: NamedDependency[Emulator],
    path: FromQuery[str | None] = None,
    method: FromQuery[str | None] = None,
) -> dict[str, Any]:
    calls = [
        call
        for call in emulator.control.calls()
        if (path is None or fnmatch.fnmatchcase(call.path, path))
        and (method is None or call.method.upper() == method.upper())
    ]
    return {"calls": msgspec.to_builtins(calls)}


@get("/clock")
async def read_clock(clock: NamedDependency[EmulatorClock]) -> dict[str, Any]:
    return _clock_view(clock)


@post("/clock", status_code=200)
async def advance_clock(request: Request[Any, Any, Any], clock: NamedDependency[EmulatorClock]) -> dict[str, Any]:
    body = _decode(await request.body(), ClockBody)
    clock.advance(body.advance_seconds)
    return _clock_view(clock)


@get("/config")
async def read_config(emulator: NamedDependency[Emulator]) -> dict[str, Any]:
    return _config_view(emulator.config)


@put("/config")
async def change_config(request: Request[Any, Any, Any], emulator: NamedDependency[Emulator]) -> dict[str, Any]:
    try:
        raw = msgspec.json.decode(await request.body() or b"{}")
    except msgspec.DecodeError as exc:
        raise Refusal(400, "VALIDATION_ERROR", f"Invalid request body: {exc}") from None
    if not isinstance(raw, dict):
        raise Refusal(400, "VALIDATION_ERROR", "Invalid request body: expected an object")
    # camelCase like the rest of the control plane; the EmulatorConfig field names work too.
    body = _decode(msgspec.json.encode({_camel(key): value for key, value in raw.items()}), ConfigBody)
    changes = {field: value for field, value in msgspec.structs.asdict(body).items() if value is not msgspec.UNSET}
    return _config_view(emulator.control.reconfigure(**changes))


@get("/faults")
async def list_faults(faults: NamedDependency[FaultBook]) -> dict[str, Any]:
    return {"faults": faults.active()}


@post("/faults")
async def add_fault(request: Request[Any, Any, Any], faults: NamedDependency[FaultBook]) -> dict[str, Any]:
    spec = _decode(await request.body(), FaultSpec)
    return {"id": faults.add(spec).id}


@delete("/faults")
async def clear_faults(faults: NamedDependency[FaultBook]) -> None:
    faults.clear()


@delete("/faults/{fault_id:str}")
async def remove_fault(fault_id: FromPath[str], faults: NamedDependency[FaultBook]) -> None:
    if not faults.remove(fault_id):
        raise Refusal(404, "FAULT_NOT_FOUND", f"No active fault {fault_id}")


@post("/reset", status_code=204)
async def reset_everything(emulator: NamedDependency[Emulator], faults: NamedDependency[FaultBook]) -> None:
    emulator.control.reset()
    faults.clear()


def _clock_view(clock: EmulatorClock) -> dict[str, Any]:
    return {"now": iso(clock.now()), "offsetSeconds": clock.offset}


def _config_view(config: EmulatorConfig) -> dict[str, Any]:
    return {_camel(key): value for key, value in msgspec.to_builtins(config).items()}


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), name)


# --- error envelopes ------------------------------------------------------------------------------


def _customer_refusal(_: Request[Any, Any, Any], exc: Refusal) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"success": False, "error_code": exc.code, "message": exc.message}
    if exc.data is not None:
        body["data"] = exc.data
    return Response(body, status_code=exc.status)


def _issuer_refusal(_: Request[Any, Any, Any], exc: Refusal) -> Response[dict[str, Any]]:
    return Response({"success": False, "error": exc.code, "message": exc.message}, status_code=exc.status)


def _control_refusal(_: Request[Any, Any, Any], exc: Refusal) -> Response[dict[str, Any]]:
    return Response({"error": exc.code, "message": exc.message}, status_code=exc.status)


def _unauthorized(_: Request[Any, Any, Any], __: Unauthorized) -> Response[dict[str, Any]]:
    return Response(
        {"success": False, "error": "unauthorized", "message": "Missing, invalid or expired access token"},
        status_code=401,
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    """Litestar's own errors (no such route, wrong method) in the emulator's envelopes."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    if request.url.path.startswith(f"{UPSTREAM_PREFIX}/"):
        body: dict[str, Any] = {"success": False, "error": code, "message": exc.detail}
    else:
        body = {"error": code.upper(), "message": exc.detail}
    return Response(body, status_code=exc.status_code)


def _internal_error(_: Request[Any, Any, Any], __: Exception) -> Response[dict[str, Any]]:
    return Response(
        {
            "success": False,
            "error": "internal_error",
            "message": "Internal server error",
            "request_id": str(uuid.uuid4()),
        },
        status_code=500,
    )


# --- composition ----------------------------------------------------------------------------------


class EmulatorApp(Litestar):
    """The Litestar app behind the call recorder and the fault injector (both raw ASGI, outermost)."""

    def __init__(self, *, emulator: Emulator, faults: FaultBook, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Outside Litestar's own exception handling, so a dropped connection is not turned into a 500.
        self._edge = CallRecorder(FaultInjector(super().__call__, faults), emulator.store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http":
            await self._edge(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_emulator_app(config: EmulatorConfig | None = None, *, clock: EmulatorClock | None = None) -> Litestar:
    """Build a fresh emulator (its own state) as an ASGI app."""
    clock = clock or EmulatorClock()
    emulator = Emulator(config or EmulatorConfig(), clock)
    faults = FaultBook()
    upstream = Router(
        path=UPSTREAM_PREFIX,
        route_handlers=[
            issue_token,
            Router(
                path="/yativo-card/customers",
                route_handlers=[
                    onboard,
                    verify_otp,
                    kyc_link,
                    kyc_status,
                    source_of_funds_questions,
                    submit_source_of_funds,
                    request_phone_verification,
                    verify_phone,
                    create_virtual_card,
                    list_cards,
                    reset_customer,
                ],
                dependencies={"core": Provide(_authorized)},
                exception_handlers={Refusal: _customer_refusal},
            ),
            Router(
                path="/card-issuer",
                route_handlers=[lookup_customer, get_customer],
                dependencies={"core": Provide(_authorized)},
                exception_handlers={Refusal: _issuer_refusal},
            ),
        ],
        exception_handlers={Refusal: _issuer_refusal},
    )
    control = Router(
        path="/_emulator",
        route_handlers=[
            read_outbox,
            list_customers,
            set_kyc_status,
            set_card_status,
            set_account,
            read_calls,
            read_clock,
            advance_clock,
            read_config,
            change_config,
            list_faults,
            add_fault,
            clear_faults,
            remove_fault,
            reset_everything,
        ],
        exception_handlers={Refusal: _control_refusal},
    )
    return EmulatorApp(
        emulator=emulator,
        faults=faults,
        route_handlers=[upstream, control],
        dependencies={
            "emulator": Provide(lambda: emulator, sync_to_thread=False),
            "faults": Provide(lambda: faults, sync_to_thread=False),
            "clock": Provide(lambda: clock, sync_to_thread=False),
        },
        exception_handlers={
            Unauthorized: _unauthorized,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        state=State({"emulator": emulator, "faults": faults, "clock": clock}),
        openapi_config=None,
        # The emulator runs inside other processes (tests, `service dev`): leave their logging alone.
        logging_config=None,
    )
