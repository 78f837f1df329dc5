"""The bundled Yativo emulator answers like yativo-api.md documents, quirks included."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.emulator import EmulatorConfig, create_emulator_app

ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
YATIVO_CARD_ID = re.compile(r"^yativo_card_customer_[0-9a-f]{16}_\d{13}$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SOF_ANSWERS = [
    {"question": "EMPLOYMENT_STATUS", "answer": "EMPLOYED"},
    {"question": "SOURCE_OF_INCOME", "answer": "SALARY"},
]
STAGES = (
    "otp_requested",
    "otp_verified",
    "kyc_initiated",
    "kyc_completed",
    "sof_submitted",
    "phone_requested",
    "phone_verified",
    "active",
)


class Yativo:
    """The test's side of the emulator: upstream calls with a token, plus the control plane."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    async def sign_in(self) -> None:
        response = await self.client.post("/api/v1/auth/token", json={"api_key": "yativo_k", "api_secret": "s"})
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    async def onboard(self, email: str, external_customer_id: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"email": email}
        if external_customer_id is not None:
            body["external_customer_id"] = external_customer_id
        return await self.call("POST", "/yativo-card/customers/onboard", json=body)

    async def customer(self, customer_id: str, step: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        return await self.call(method, f"/yativo-card/customers/{customer_id}/{step}", **kwargs)

    async def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {} if to is None else {"to": to}
        return (await self.client.get("/_emulator/outbox", params=params)).json()["messages"]

    async def last_code(self, to: str) -> str:
        return (await self.messages(to))[-1]["code"]

    async def set_kyc(self, email: str, status: str) -> httpx.Response:
        return await self.client.post(f"/_emulator/customers/{email}/kyc", json={"status": status})

    async def set_account(self, email: str, *, safe_deployed: bool) -> httpx.Response:
        return await self.client.post(f"/_emulator/customers/{email}/account", json={"safe_deployed": safe_deployed})

    async def advance(self, seconds: float) -> None:
        response = await self.client.post("/_emulator/clock", json={"advanceSeconds": seconds})
        assert response.status_code == 200

    async def customer_at(self, stage: str, email: str = "cu@example.com", external_id: str = "usr_1") -> str:
        """A customer walked through the flow up to `stage`; returns its yativo_card_id."""
        reached = STAGES.index(stage)
        phone = "+14155552671"
        customer_id = (await self.onboard(email, external_id)).json()["data"]["yativo_card_id"]

        async def step(response: httpx.Response) -> None:
            assert response.status_code in (200, 201), response.text

        if reached >= 1:
            otp = await self.last_code(email)
            await step(await self.customer(customer_id, "verify-otp", "POST", json={"otp": otp}))
        if reached >= 2:
            await step(await self.customer(customer_id, "kyc-link"))
        if reached >= 3:
            await step(await self.set_kyc(email, "approved"))
        if reached >= 4:
            await step(await self.customer(customer_id, "source-of-funds", "POST", json={"answers": SOF_ANSWERS}))
        if reached >= 5:
            body = {"phoneNumber": phone}
            await step(await self.customer(customer_id, "phone/request-verification", "POST", json=body))
        if reached >= 6:
            code = await self.last_code(phone)
            await step(await self.customer(customer_id, "phone/verify", "POST", json={"code": code}))
        if reached >= 7:
            await step(await self.customer(customer_id, "cards/virtual", "POST", json={}))
        return customer_id


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig(kyc_auto_approve_seconds=None)


@pytest.fixture
async def yativo(config: EmulatorConfig) -> AsyncIterator[Yativo]:
    transport = httpx.ASGITransport(app=create_emulator_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        upstream = Yativo(client)
        await upstream.sign_in()
        yield upstream


def assert_customer_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error_code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "error" not in body
    return body


def assert_issuer_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    assert "error_code" not in body
    return body


def success_data(response: httpx.Response, status: int, message: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == message
    return body["data"]


# --- auth -----------------------------------------------------------------------------------------


async def test_the_token_endpoint_issues_a_bearer_token_shaped_like_the_api_reference(yativo: Yativo) -> None:
    response = await yativo.client.post("/api/v1/auth/token", json={"api_key": "yativo_k", "api_secret": "s"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "success",
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "scopes",
        "refresh_recommendation",
    }
    assert body["success"] is True
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 20
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert ISO_MILLIS.match(body["expires_at"])
    assert body["scopes"] == ["read", "write", "transactions"]
    assert body["refresh_recommendation"] == {"refresh_before_seconds": 300, "auto_refresh_enabled": True}


@pytest.mark.parametrize(
    "credentials",
    [{}, {"api_key": "yativo_k"}, {"api_key": "", "api_secret": "s"}, {"api_key": "k", "api_secret": 7}],
)
async def test_the_token_endpoint_refuses_missing_or_empty_credentials_with_401(
    yativo: Yativo, credentials: dict[str, Any]
) -> None:
    response = await yativo.client.post("/api/v1/auth/token", json=credentials)

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid, expired, or revoked API key"}


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
async def test_upstream_routes_refuse_requests_without_a_valid_token(yativo: Yativo, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/api/v1/yativo-card/customers/onboard", "/api/v1/card-issuer/lookup-customer?email=a@b.co"):
        method = "POST" if path.endswith("onboard") else "GET"
        response = await yativo.client.request(method, path, headers=headers, json={"email": "a@b.co"})

        assert response.status_code == 401
        assert response.json() == {
            "success": False,
            "error": "unauthorized",
            "message": "Missing, invalid or expired access token",
        }


async def test_a_token_stops_working_once_it_expires(yativo: Yativo) -> None:
    assert (await yativo.onboard("early@example.com")).status_code == 201

    await yativo.advance(3600)

    assert (await yativo.onboard("late@example.com")).status_code == 401


# --- onboarding -----------------------------------------------------------------------------------


async def test_onboarding_creates_a_customer_and_emails_a_six_digit_code(yativo: Yativo) -> None:
    response = await yativo.onboard("customer@example.com", "usr_8821")

    data = success_data(response, 201, "Customer card onboarding initiated. Verification code sent to customer email.")
    assert set(data) == {
        "yativo_card_id",
        "customer_id",
        "external_customer_id",
        "email_masked",
        "next_step",
        "otp_expires_in_seconds",
    }
    assert YATIVO_CARD_ID.match(data["yativo_card_id"])
    assert OBJECT_ID.match(data["customer_id"])
    assert data["external_customer_id"] == "usr_8821"
    assert data["email_masked"] == "cu***@example.com"
    assert data["next_step"] == "verify_otp"
    assert data["otp_expires_in_seconds"] == 600
    (message,) = await yativo.messages()
    assert message["to"] == "customer@example.com"
    assert message["kind"] == "email"
    assert re.fullmatch(r"[0-9]{6}", message["code"])
    assert ISO_MILLIS.match(message["sentAt"])


async def test_onboarding_without_an_external_id_echoes_null(yativo: Yativo) -> None:
    data = success_data(
        await yativo.onboard("solo@example.com"),
        201,
        "Customer card onboarding initiated. Verification code sent to customer email.",
    )

    assert data["external_customer_id"] is None


async def test_repeating_onboard_with_the_same_email_answers_409_carrying_the_external_id(yativo: Yativo) -> None:
    first = (await yativo.onboard("customer@example.com", "usr_1")).json()["data"]

    response = await yativo.onboard("  Customer@EXAMPLE.com ", "usr_someone_else")

    body = assert_customer_error(response, 409, "CUSTOMER_CARD_ALREADY_ACTIVE")
    assert body["data"] == {
        "yativo_card_id": first["yativo_card_id"],
        "flow_status": "otp_requested",
        "next_step": "verify_otp",
        "external_customer_id": "usr_1",
    }
    assert len(await yativo.messages()) == 1


async def test_repeating_onboard_with_the_same_external_id_answers_400_without_the_external_id(
    yativo: Yativo,
) -> None:
    first = (await yativo.onboard("customer@example.com", "usr_1")).json()["data"]

    response = await yativo.onboard("other@example.com", "usr_1")

    body = assert_customer_error(response, 400, "CUSTOMER_CARD_ALREADY_ACTIVE")
    assert body["message"] == "Customer card onboarding already in progress"
    assert body["data"] == {
        "yativo_card_id": first["yativo_card_id"],
        "flow_status": "otp_requested",
        "next_step": "verify_otp",
    }


@pytest.mark.parametrize(
    ("stage", "flow_status", "next_step"),
    [
        ("otp_verified", "otp_verified", "kyc_link"),
        ("kyc_initiated", "kyc_initiated", "continue"),
        ("phone_verified", "kyc_completed", "continue"),
    ],
)
async def test_the_resume_conflict_names_the_step_to_continue_with(
    yativo: Yativo, stage: str, flow_status: str, next_step: str
) -> None:
    await yativo.customer_at(stage, email="cu@example.com", external_id="usr_1")

    by_email = assert_customer_error(await yativo.onboard("cu@example.com"), 409, "CUSTOMER_CARD_ALREADY_ACTIVE")
    by_id = assert_customer_error(await yativo.onboard("x@example.com", "usr_1"), 400, "CUSTOMER_CARD_ALREADY_ACTIVE")

    for body in (by_email, by_id):
        assert body["data"]["flow_status"] == flow_status
        assert body["data"]["next_step"] == next_step


async def test_onboarding_a_customer_who_has_a_card_answers_409_already_onboarded(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active", email="cu@example.com", external_id="usr_1")

    for response in (await yativo.onboard("cu@example.com"), await yativo.onboard("x@example.com", "usr_1")):
        body = assert_customer_error(response, 409, "CUSTOMER_ALREADY_ONBOARDED")
        assert body["data"] == {
            "yativo_card_id": customer_id,
            "flow_status": "active",
            "external_customer_id": "usr_1",
            "next_step": "none",
        }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "INVALID_EMAIL"),
        ({"email": ""}, 400, "INVALID_EMAIL"),
        ({"email": "not-an-email"}, 400, "INVALID_EMAIL"),
        ({"email": "a@b"}, 400, "INVALID_EMAIL"),
        ({"email": f"{'a' * 250}@example.com"}, 400, "INVALID_EMAIL"),
        ({"email": "Issuer@Emulator.Yativo.Test"}, 400, "ISSUER_EMAIL_NOT_ALLOWED"),
        ({"email": 42}, 400, "VALIDATION_ERROR"),
        ({"email": "ok@example.com", "external_customer_id": ["x"]}, 400, "VALIDATION_ERROR"),
    ],
)
async def test_onboarding_refuses_unusable_emails_and_bodies(
    yativo: Yativo, body: dict[str, Any], status: int, code: str
) -> None:
    response = await yativo.call("POST", "/yativo-card/customers/onboard", json=body)

    body = assert_customer_error(response, status, code)
    assert "data" not in body
    assert await yativo.messages() == []


async def test_onboarding_refuses_the_email_of_the_issuers_own_card(yativo: Yativo) -> None:
    response = await yativo.onboard("own-card@emulator.yativo.test")

    body = assert_customer_error(response, 400, "EMAIL_ALREADY_IN_USE")
    assert body["data"] == {"account_type": "user", "flow_status": "card_created"}


async def test_a_body_that_is_not_json_answers_validation_error_in_the_upstream_envelope(yativo: Yativo) -> None:
    response = await yativo.call(
        "POST", "/yativo-card/customers/onboard", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert_customer_error(response, 400, "VALIDATION_ERROR")


# --- email code -----------------------------------------------------------------------------------


async def test_the_emailed_code_verifies_the_email(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")

    code = await yativo.last_code("cu@example.com")

    response = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": code})

    data = success_data(response, 200, "Email verified successfully")
    assert data == {"yativo_card_id": customer_id, "flow_status": "otp_verified", "next_step": "kyc_link"}


async def test_a_wrong_email_code_answers_invalid_otp(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")
    right = await yativo.last_code("cu@example.com")
    wrong = "000000" if right != "000000" else "111111"

    response = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": wrong})

    body = assert_customer_error(response, 400, "OTP_VERIFICATION_FAILED")
    assert body["message"] == "Invalid OTP"


async def test_an_expired_email_code_is_refused_and_onboarding_again_sends_a_new_one(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")
    old = await yativo.last_code("cu@example.com")
    await yativo.advance(601)

    expired = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": old})
    again = await yativo.onboard("cu@example.com", "usr_1")

    assert "Request a new one." in assert_customer_error(expired, 400, "OTP_EXPIRED")["message"]
    assert_customer_error(again, 409, "CUSTOMER_CARD_ALREADY_ACTIVE")
    assert len(await yativo.messages("cu@example.com")) == 2
    new = await yativo.last_code("cu@example.com")
    verified = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": new})
    assert verified.status_code == 200


async def test_onboarding_again_within_a_minute_of_the_code_sends_nothing(yativo: Yativo) -> None:
    await yativo.customer_at("otp_requested")
    await yativo.advance(59)

    await yativo.onboard("cu@example.com", "usr_1")
    await yativo.onboard("other@example.com", "usr_1")

    assert len(await yativo.messages()) == 1


async def test_onboarding_again_a_minute_after_the_code_sends_a_new_one_that_replaces_it(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")
    old = await yativo.last_code("cu@example.com")
    await yativo.advance(60)

    await yativo.onboard("cu@example.com", "usr_1")

    assert len(await yativo.messages()) == 2
    new = await yativo.last_code("cu@example.com")
    if new != old:
        refused = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": old})
        assert_customer_error(refused, 400, "OTP_VERIFICATION_FAILED")
    verified = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": new})
    assert verified.status_code == 200


async def test_five_wrong_codes_kill_the_code_until_onboarding_again_sends_a_new_one(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")
    right = await yativo.last_code("cu@example.com")
    wrong = "000000" if right != "000000" else "111111"

    answers = [await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": wrong}) for _ in range(5)]
    after_lock = await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": right})

    for response in answers[:4]:
        assert_customer_error(response, 400, "OTP_VERIFICATION_FAILED")
    assert_customer_error(answers[4], 400, "OTP_ATTEMPTS_EXCEEDED")
    assert_customer_error(after_lock, 400, "OTP_ATTEMPTS_EXCEEDED")
    await yativo.onboard("cu@example.com")
    assert len(await yativo.messages()) == 2
    fresh = await yativo.last_code("cu@example.com")
    assert (await yativo.customer(customer_id, "verify-otp", "POST", json={"otp": fresh})).status_code == 200


# --- KYC ------------------------------------------------------------------------------------------


async def test_the_kyc_link_has_the_sumsub_shape_by_default(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_verified")

    first = success_data(await yativo.customer(customer_id, "kyc-link"), 200, "KYC link retrieved")
    second = success_data(await yativo.customer(customer_id, "kyc-link"), 200, "KYC link retrieved")

    assert set(first) == {"yativo_card_id", "sumsub_link", "sumsub_sdk_token", "applicant_id", "next_step"}
    assert first["yativo_card_id"] == customer_id
    assert first["sumsub_sdk_token"].startswith("_act-sbx-")
    assert first["sumsub_link"] == f"https://kyc.sumsub.com/msdk/v2?accessToken={first['sumsub_sdk_token']}"
    assert OBJECT_ID.match(first["applicant_id"])
    assert first["next_step"] == "kyc_status"
    assert second["sumsub_link"] != first["sumsub_link"]


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=None, kyc_link_shape="kyc_url")])
async def test_the_kyc_link_can_take_the_docs_repo_kyc_url_shape(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_verified")

    data = success_data(
        await yativo.customer(customer_id, "kyc-link"),
        200,
        "KYC link generated. Open the link to complete identity verification.",
    )

    assert set(data) == {"yativo_card_id", "kyc_url", "instructions", "next_step"}
    assert data["kyc_url"].startswith("https://kyc.yativo.com/verify?token=")
    assert data["next_step"] == "kyc_status"


async def test_the_kyc_link_shape_can_change_at_run_time_to_carry_both_links(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_verified")

    changed = await yativo.client.put("/_emulator/config", json={"kycLinkShape": "both"})
    data = success_data(await yativo.customer(customer_id, "kyc-link"), 200, "KYC link retrieved")

    assert changed.json()["kycLinkShape"] == "both"
    assert {"sumsub_link", "sumsub_sdk_token", "applicant_id", "kyc_url", "instructions", "next_step"} <= set(data)


async def test_the_config_takes_camel_or_snake_case_names_and_refuses_unknown_ones(yativo: Yativo) -> None:
    camel = await yativo.client.put("/_emulator/config", json={"kycAutoApproveSeconds": 5, "safeDeploySeconds": 1})
    snake = await yativo.client.put("/_emulator/config", json={"kyc_link_shape": "kyc_url"})
    unknown = await yativo.client.put("/_emulator/config", json={"kycLinkColour": "red"})

    assert camel.status_code == snake.status_code == 200
    assert (snake.json()["kycAutoApproveSeconds"], snake.json()["kycLinkShape"]) == (5, "kyc_url")
    assert snake.json()["safeDeploySeconds"] == 1
    assert unknown.status_code == 400
    assert (await yativo.client.get("/_emulator/config")).json() == snake.json()


async def test_fetching_the_kyc_link_moves_the_customer_to_kyc_initiated(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")

    data = (await yativo.call("GET", f"/card-issuer/lookup-customer?yativo_card_id={customer_id}")).json()["data"]

    assert data["flow_status"] == "kyc_initiated"


@pytest.mark.parametrize("status", ["pending", "in_progress", "pending_review"])
async def test_kyc_status_under_review_has_no_level_no_terms_and_no_next_step(yativo: Yativo, status: str) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    await yativo.set_kyc("cu@example.com", status)

    data = success_data(await yativo.customer(customer_id, "kyc-status"), 200, "KYC status retrieved")

    assert data == {
        "yativo_card_id": customer_id,
        "kyc_status": status,
        "verification_level": None,
        "terms_accepted": False,
        "next_step": None,
    }


async def test_approved_kyc_says_create_virtual_card_although_funds_and_phone_are_still_due(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    await yativo.set_kyc("cu@example.com", "approved")

    data = success_data(await yativo.customer(customer_id, "kyc-status"), 200, "KYC status retrieved")
    record = (await yativo.call("GET", f"/card-issuer/customers/{customer_id}")).json()["data"]

    assert data == {
        "yativo_card_id": customer_id,
        "kyc_status": "approved",
        "verification_level": "STANDARD",
        "terms_accepted": True,
        "next_step": "create_virtual_card",
    }
    assert record["flow_status"] == "kyc_completed"
    assert record["safe_deployed"] is True


async def test_rejected_kyc_carries_the_rejection_reason(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    await yativo.set_kyc("cu@example.com", "rejected")

    data = success_data(await yativo.customer(customer_id, "kyc-status"), 200, "KYC status retrieved")

    assert data["kyc_status"] == "rejected"
    assert data["rejection_reason"] == "Document not accepted"
    assert data["next_step"] is None
    assert data["verification_level"] is None


async def test_expired_kyc_is_reported_and_a_new_link_starts_a_new_check(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    await yativo.set_kyc("cu@example.com", "expired")

    expired = success_data(await yativo.customer(customer_id, "kyc-status"), 200, "KYC status retrieved")
    await yativo.customer(customer_id, "kyc-link")
    restarted = success_data(await yativo.customer(customer_id, "kyc-status"), 200, "KYC status retrieved")

    assert (expired["kyc_status"], expired["next_step"]) == ("expired", None)
    assert restarted["kyc_status"] == "pending"


async def test_the_control_plane_refuses_unknown_kyc_statuses_and_unknown_emails(yativo: Yativo) -> None:
    await yativo.customer_at("kyc_initiated")

    unknown_status = await yativo.set_kyc("cu@example.com", "maybe")
    unknown_email = await yativo.set_kyc("nobody@example.com", "approved")

    assert unknown_status.status_code == 400
    assert unknown_email.status_code == 404


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=0.05)])
async def test_kyc_approves_itself_shortly_after_the_first_link_fetch(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    before = (await yativo.customer(customer_id, "kyc-status")).json()["data"]["kyc_status"]

    await asyncio.sleep(0.1)

    assert before == "pending"
    assert (await yativo.customer(customer_id, "kyc-status")).json()["data"]["kyc_status"] == "approved"


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=30)])
async def test_kyc_auto_approval_follows_the_emulator_clock(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")

    await yativo.advance(29)
    early = (await yativo.customer(customer_id, "kyc-status")).json()["data"]["kyc_status"]
    await yativo.advance(1)
    late = (await yativo.customer(customer_id, "kyc-status")).json()["data"]["kyc_status"]

    assert (early, late) == ("pending", "approved")


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=30)])
async def test_kyc_set_by_hand_is_not_overridden_by_the_auto_approval(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated")
    await yativo.set_kyc("cu@example.com", "in_progress")

    await yativo.advance(60)

    assert (await yativo.customer(customer_id, "kyc-status")).json()["data"]["kyc_status"] == "in_progress"


# --- source of funds ------------------------------------------------------------------------------


async def test_source_of_funds_questions_and_submission_match_the_docs(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_completed")

    questions = success_data(
        await yativo.customer(customer_id, "source-of-funds", params={"locale": "en"}),
        200,
        "Source of Funds questions retrieved",
    )
    submitted = success_data(
        await yativo.customer(customer_id, "source-of-funds", "POST", json={"answers": SOF_ANSWERS}),
        200,
        "Source of Funds submitted successfully",
    )

    assert questions == {
        "yativo_card_id": customer_id,
        "status": "questions_retrieved",
        "questions": [
            {
                "question": "EMPLOYMENT_STATUS",
                "label": "What is your employment status?",
                "options": ["EMPLOYED", "SELF_EMPLOYED", "UNEMPLOYED", "STUDENT", "RETIRED"],
            },
            {
                "question": "SOURCE_OF_INCOME",
                "label": "What is your primary source of income?",
                "options": ["SALARY", "BUSINESS_INCOME", "INVESTMENT", "PENSION", "OTHER"],
            },
        ],
        "next_step": "Submit answers using POST /source-of-funds",
    }
    assert set(submitted) == {"yativo_card_id", "status", "submitted_at", "next_step"}
    assert submitted["status"] == "completed"
    assert ISO_MILLIS.match(submitted["submitted_at"])
    assert submitted["next_step"] == "Verify phone number using POST /phone/request-verification"


@pytest.mark.parametrize(
    "answers",
    [
        [],
        [{"question": "EMPLOYMENT_STATUS", "answer": "EMPLOYED"}],
        [*SOF_ANSWERS, {"question": "SOURCE_OF_INCOME", "answer": "PENSION"}],
        [{"question": "EMPLOYMENT_STATUS", "answer": "ASTRONAUT"}, SOF_ANSWERS[1]],
        [*SOF_ANSWERS, {"question": "FAVOURITE_COLOUR", "answer": "BLUE"}],
    ],
)
async def test_source_of_funds_refuses_answers_that_miss_repeat_or_invent(
    yativo: Yativo, answers: list[dict[str, str]]
) -> None:
    customer_id = await yativo.customer_at("kyc_completed")

    response = await yativo.customer(customer_id, "source-of-funds", "POST", json={"answers": answers})

    assert_customer_error(response, 400, "INVALID_SOURCE_OF_FUNDS_ANSWERS")


# --- phone ----------------------------------------------------------------------------------------


async def test_requesting_phone_verification_masks_the_number_and_texts_a_code(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("sof_submitted")

    response = await yativo.customer(
        customer_id, "phone/request-verification", "POST", json={"phoneNumber": "+14155552671"}
    )

    data = success_data(response, 200, "Verification code sent to your phone")
    assert set(data) == {"yativo_card_id", "phone_number", "otp_requested_at", "next_step"}
    assert data["phone_number"] == "+14155****"
    assert ISO_MILLIS.match(data["otp_requested_at"])
    assert data["next_step"] == "Verify OTP using POST /phone/verify"
    (sms,) = await yativo.messages("+14155552671")
    assert sms["kind"] == "sms"
    assert re.fullmatch(r"[0-9]{6}", sms["code"])


@pytest.mark.parametrize("body", [{"phoneNumber": "4155552671"}, {"phoneNumber": "+0123456789"}, {}])
async def test_phone_numbers_not_in_e164_are_refused(yativo: Yativo, body: dict[str, Any]) -> None:
    customer_id = await yativo.customer_at("sof_submitted")

    response = await yativo.customer(customer_id, "phone/request-verification", "POST", json=body)

    assert_customer_error(response, 400, "INVALID_PHONE_NUMBER")


async def test_the_texted_code_verifies_the_phone_and_a_wrong_one_does_not(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_requested")
    right = await yativo.last_code("+14155552671")
    wrong = "000000" if right != "000000" else "111111"

    refused = await yativo.customer(customer_id, "phone/verify", "POST", json={"code": wrong})
    accepted = await yativo.customer(customer_id, "phone/verify", "POST", json={"code": right})

    assert_customer_error(refused, 400, "INVALID_VERIFICATION_CODE")
    assert success_data(accepted, 200, "Phone number verified successfully") == {
        "yativo_card_id": customer_id,
        "phone_number": "+14155****",
        "is_verified": True,
        "next_step": "Create virtual card using POST /cards/virtual",
    }


async def test_an_expired_texted_code_is_refused_and_requesting_again_sends_a_new_one(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_requested")
    old = await yativo.last_code("+14155552671")
    await yativo.advance(601)

    expired = await yativo.customer(customer_id, "phone/verify", "POST", json={"code": old})
    await yativo.customer(customer_id, "phone/request-verification", "POST", json={"phoneNumber": "+14155552671"})
    new = await yativo.last_code("+14155552671")
    verified = await yativo.customer(customer_id, "phone/verify", "POST", json={"code": new})

    assert_customer_error(expired, 400, "VERIFICATION_CODE_EXPIRED")
    assert len(await yativo.messages("+14155552671")) == 2
    assert verified.status_code == 200


# --- card -----------------------------------------------------------------------------------------


async def test_creating_the_virtual_card_matches_the_documented_shape_and_activates_the_customer(
    yativo: Yativo,
) -> None:
    customer_id = await yativo.customer_at("phone_verified")

    data = success_data(
        await yativo.customer(customer_id, "cards/virtual", "POST", json={}), 201, "Virtual card created successfully"
    )

    assert set(data) == {
        "yativo_card_id",
        "card_id",
        "card_type",
        "status",
        "status_code",
        "status_name",
        "activated_at",
        "total_cards",
        "funding_wallet",
    }
    assert data["yativo_card_id"] == customer_id
    assert UUID4.match(data["card_id"])
    assert (data["card_type"], data["status"], data["status_code"], data["status_name"]) == (
        "virtual",
        "active",
        1000,
        "Active",
    )
    assert ISO_MILLIS.match(data["activated_at"])
    assert data["total_cards"] == 1
    assert data["funding_wallet"]["network"] == "solana"
    assert data["funding_wallet"]["asset"] == "USDC"
    assert isinstance(data["funding_wallet"]["address"], str) and data["funding_wallet"]["address"]
    lookup = (await yativo.call("GET", f"/card-issuer/lookup-customer?card_id={data['card_id']}")).json()["data"]
    assert lookup["flow_status"] == "active"


async def test_a_second_virtual_card_is_refused(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active")

    response = await yativo.customer(customer_id, "cards/virtual", "POST", json={})

    assert_customer_error(response, 400, "VIRTUAL_CARD_LIMIT_REACHED")


async def test_listing_cards_shows_the_last_four_digits(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active")

    data = success_data(await yativo.customer(customer_id, "cards"), 200, "Cards retrieved successfully")

    assert data["total"] == 1
    (card,) = data["cards"]
    assert set(card) == {
        "card_id",
        "card_type",
        "status_name",
        "is_frozen",
        "last_four_digits",
        "holder_name",
        "activated_at",
    }
    assert re.fullmatch(r"[0-9]{4}", card["last_four_digits"])
    assert (card["card_type"], card["status_name"], card["is_frozen"]) == ("virtual", "Active", False)


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=None, safe_deploy_seconds=60)])
async def test_the_card_waits_until_the_wallet_is_deployed(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_verified")

    deploying = (await yativo.call("GET", f"/card-issuer/customers/{customer_id}")).json()["data"]
    refused = await yativo.customer(customer_id, "cards/virtual", "POST", json={})
    await yativo.advance(60)
    created = await yativo.customer(customer_id, "cards/virtual", "POST", json={})

    assert (deploying["flow_status"], deploying["step"], deploying["safe_deployed"]) == ("safe_deploying", 5, False)
    assert deploying["ledger_balance"] is None
    assert_customer_error(refused, 409, "SAFE_NOT_DEPLOYED")
    assert created.status_code == 201


async def test_a_wallet_held_by_the_control_plane_refuses_the_card_until_it_is_released(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_verified")

    held = await yativo.set_account("cu@example.com", safe_deployed=False)
    issuer = (await yativo.call("GET", f"/card-issuer/customers/{customer_id}")).json()["data"]
    found = (await yativo.call("GET", "/card-issuer/lookup-customer", params={"email": "cu@example.com"})).json()
    refused = await yativo.customer(customer_id, "cards/virtual", "POST", json={})
    await yativo.advance(600)  # long past the deploy timer, short of the token's expiry
    still_refused = await yativo.customer(customer_id, "cards/virtual", "POST", json={})
    released = await yativo.set_account("cu@example.com", safe_deployed=True)
    created = await yativo.customer(customer_id, "cards/virtual", "POST", json={})

    assert held.status_code == 200
    assert (held.json()["safe_deployed"], held.json()["flow_status"]) == (False, "safe_deploying")
    assert (issuer["flow_status"], issuer["step"], issuer["safe_deployed"]) == ("safe_deploying", 5, False)
    assert issuer["next_action"] == "Account wallet is being deployed, wait a few minutes"
    assert found["data"]["safe_deployed"] is False
    assert_customer_error(refused, 409, "SAFE_NOT_DEPLOYED")
    assert_customer_error(still_refused, 409, "SAFE_NOT_DEPLOYED")
    assert (released.json()["safe_deployed"], released.json()["flow_status"]) == (True, "kyc_completed")
    assert created.status_code == 201, created.text


async def test_a_wallet_held_before_kyc_approval_stays_undeployed_after_it(yativo: Yativo) -> None:
    await yativo.customer_at("kyc_initiated")

    await yativo.set_account("cu@example.com", safe_deployed=False)
    approved = (await yativo.set_kyc("cu@example.com", "approved")).json()

    assert (approved["kyc_status"], approved["safe_deployed"]) == ("approved", False)


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=None, safe_deploy_seconds=60)])
async def test_releasing_the_wallet_deploys_it_without_waiting_for_the_deploy_timer(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_verified")

    released = await yativo.set_account("cu@example.com", safe_deployed=True)
    created = await yativo.customer(customer_id, "cards/virtual", "POST", json={})

    assert (released.status_code, released.json()["safe_deployed"]) == (200, True)
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("config", [EmulatorConfig(kyc_auto_approve_seconds=None, safe_deploy_seconds=60)])
async def test_a_wallet_released_before_kyc_approval_deploys_at_the_approval(yativo: Yativo) -> None:
    await yativo.customer_at("kyc_initiated")

    early = (await yativo.set_account("cu@example.com", safe_deployed=True)).json()
    approved = (await yativo.set_kyc("cu@example.com", "approved")).json()

    assert (early["kyc_status"], early["safe_deployed"]) == ("pending", False)
    assert (approved["kyc_status"], approved["safe_deployed"]) == ("approved", True)


async def test_the_account_control_refuses_unknown_emails_bad_bodies_and_holding_an_issued_cards_wallet(
    yativo: Yativo,
) -> None:
    await yativo.customer_at("active")

    unknown = await yativo.set_account("nobody@example.com", safe_deployed=False)
    bad_body = await yativo.client.post("/_emulator/customers/cu@example.com/account", json={"safe_deployed": "no"})
    issued = await yativo.set_account("cu@example.com", safe_deployed=False)

    assert (unknown.status_code, unknown.json()["error"]) == (404, "CUSTOMER_NOT_FOUND")
    assert (bad_body.status_code, bad_body.json()["error"]) == (400, "VALIDATION_ERROR")
    assert (issued.status_code, issued.json()["error"]) == (409, "CARD_ALREADY_ISSUED")
    (record,) = (await yativo.client.get("/_emulator/customers")).json()["customers"]
    assert (record["flow_status"], record["safe_deployed"]) == ("active", True)


# --- out of order and unknown ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "method", "step", "body"),
    [
        ("otp_requested", "GET", "kyc-link", None),
        ("otp_requested", "GET", "kyc-status", None),
        ("otp_verified", "POST", "verify-otp", {"otp": "123456"}),
        ("kyc_initiated", "GET", "source-of-funds", None),
        ("kyc_initiated", "POST", "source-of-funds", {"answers": SOF_ANSWERS}),
        ("kyc_completed", "GET", "kyc-link", None),
        ("kyc_completed", "POST", "phone/request-verification", {"phoneNumber": "+14155552671"}),
        ("sof_submitted", "POST", "phone/verify", {"code": "123456"}),
        ("phone_requested", "POST", "cards/virtual", {}),
    ],
)
async def test_steps_called_out_of_order_answer_409_invalid_flow_state(
    yativo: Yativo, stage: str, method: str, step: str, body: dict[str, Any] | None
) -> None:
    customer_id = await yativo.customer_at(stage)

    response = await yativo.customer(customer_id, step, method, json=body)

    data = assert_customer_error(response, 409, "INVALID_FLOW_STATE")["data"]
    assert set(data) == {"yativo_card_id", "flow_status", "next_step"}
    assert data["yativo_card_id"] == customer_id


@pytest.mark.parametrize(
    ("method", "step"), [("POST", "verify-otp"), ("GET", "kyc-link"), ("GET", "kyc-status"), ("GET", "cards")]
)
async def test_an_unknown_customer_answers_404_customer_not_found(yativo: Yativo, method: str, step: str) -> None:
    response = await yativo.customer("yativo_card_customer_0000000000000000_1", step, method, json={"otp": "123456"})

    assert_customer_error(response, 404, "CUSTOMER_NOT_FOUND")


# --- card-issuer namespace ------------------------------------------------------------------------


async def test_lookup_finds_a_customer_by_each_documented_identifier(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active", email="cu@example.com", external_id="usr_9")
    record = (await yativo.client.get("/_emulator/customers")).json()["customers"][0]
    card_id = record["cards"][0]["card_id"]
    identifiers = {
        "yativo_card_id": customer_id,
        "customer_id": record["customer_id"],
        "id": record["customer_id"],
        "card_id": card_id,
        "external_id": "usr_9",
        "email": "CU@example.com",
    }

    for key, value in identifiers.items():
        response = await yativo.call("GET", "/card-issuer/lookup-customer", params={key: value})

        assert response.status_code == 200, key
        body = response.json()
        assert body["success"] is True
        data = body["data"]
        assert set(data) == {
            "yativo_card_id",
            "external_id",
            "email",
            "flow_status",
            "currency",
            "token",
            "safe_deployed",
            "cards_count",
            "cards",
            "created_at",
        }
        assert (data["yativo_card_id"], data["external_id"], data["email"]) == (
            customer_id,
            "usr_9",
            "cu@example.com",
        )
        assert (data["flow_status"], data["currency"], data["safe_deployed"], data["cards_count"]) == (
            "active",
            "USD",
            True,
            1,
        )
        (card,) = data["cards"]
        assert set(card) == {"card_id", "last_four", "card_type", "is_frozen", "is_lost", "is_blocked", "status"}
        assert card["card_id"] == card_id


async def test_lookup_by_a_customer_id_that_is_not_an_object_id_falls_back_to_the_yativo_card_id(
    yativo: Yativo,
) -> None:
    customer_id = await yativo.customer_at("otp_requested")

    response = await yativo.call("GET", "/card-issuer/lookup-customer", params={"customer_id": customer_id})

    assert response.json()["data"]["yativo_card_id"] == customer_id


async def test_lookup_reports_no_currency_before_kyc_approval(yativo: Yativo) -> None:
    await yativo.customer_at("otp_requested")

    data = (await yativo.call("GET", "/card-issuer/lookup-customer", params={"external_id": "usr_1"})).json()["data"]

    assert (data["flow_status"], data["currency"], data["safe_deployed"], data["cards"]) == (
        "otp_requested",
        None,
        False,
        [],
    )


@pytest.mark.parametrize("params", [{}, {"email": ""}, {"email": "cu@example.com", "external_id": "usr_1"}])
async def test_lookup_needs_exactly_one_identifier(yativo: Yativo, params: dict[str, str]) -> None:
    await yativo.customer_at("otp_requested")

    response = await yativo.call("GET", "/card-issuer/lookup-customer", params=params)

    body = assert_issuer_error(response, 400, "MISSING_IDENTIFIER")
    assert body["message"] == "Provide one of: id, yativo_card_id, customer_id, card_id, external_id, email"


async def test_lookup_of_an_unknown_customer_answers_404_with_error_not_error_code(yativo: Yativo) -> None:
    response = await yativo.call("GET", "/card-issuer/lookup-customer", params={"external_id": "nobody"})

    assert_issuer_error(response, 404, "CUSTOMER_NOT_FOUND")


async def test_get_customer_accepts_each_identifier_and_has_the_documented_fields(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active", email="cu@example.com", external_id="usr_9")
    internal_id = (await yativo.client.get("/_emulator/customers")).json()["customers"][0]["customer_id"]

    for key in (customer_id, internal_id, "usr_9"):
        response = await yativo.call("GET", f"/card-issuer/customers/{key}")

        assert response.status_code == 200
        data = response.json()["data"]
        assert set(data) == {
            "yativo_card_id",
            "external_id",
            "email",
            "flow_status",
            "step",
            "next_action",
            "kyc_status",
            "currency",
            "safe_deployed",
            "ledger_balance",
            "available_balance",
            "pending_balance",
            "balance_freshness",
            "balance_updated_at",
            "cards_count",
            "pin_set",
            "cards",
            "created_at",
        }
        assert (data["yativo_card_id"], data["external_id"], data["flow_status"], data["step"]) == (
            customer_id,
            "usr_9",
            "active",
            6,
        )
        assert (data["kyc_status"], data["currency"], data["cards_count"]) == ("approved", "USD", 1)
        assert isinstance(data["next_action"], str)
        (card,) = data["cards"]
        assert {"card_id", "last_four", "card_type", "status", "is_frozen", "is_lost", "is_stolen"} <= set(card)
        assert card["status"] == "active"


async def test_get_customer_reports_the_early_steps(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("otp_requested")

    data = (await yativo.call("GET", f"/card-issuer/customers/{customer_id}")).json()["data"]

    assert (data["flow_status"], data["step"], data["kyc_status"], data["currency"]) == (
        "otp_requested",
        1,
        "pending",
        None,
    )
    assert data["safe_deployed"] is False
    assert data["ledger_balance"] is None


async def test_get_customer_of_an_unknown_id_answers_404(yativo: Yativo) -> None:
    assert_issuer_error(await yativo.call("GET", "/card-issuer/customers/nobody"), 404, "CUSTOMER_NOT_FOUND")


# --- reset ----------------------------------------------------------------------------------------


async def test_resetting_a_customer_burns_the_email_and_frees_the_external_id(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("kyc_initiated", email="sam@hotmail.com", external_id="usr_8821")

    data = success_data(
        await yativo.customer(customer_id, "reset", "POST"),
        200,
        "Customer onboarding reset. Re-onboard this customer via POST /api/yativo-card/customers/onboard "
        "with a different email address.",
    )
    reused = await yativo.onboard("sam@hotmail.com", "usr_other")
    fresh = await yativo.onboard("sam.new@hotmail.com", "usr_8821")

    assert data["deleted_card_id"] == customer_id
    assert data["email_masked"] == "sa***@hotmail.com"
    assert data["external_customer_id"] == "usr_8821"
    assert data["next_step"] == "POST /api/yativo-card/customers/onboard"
    assert "cannot be reused" in data["email_warning"]
    assert_customer_error(reused, 409, "EMAIL_ALREADY_REGISTERED")
    assert fresh.status_code == 201


async def test_a_customer_with_a_card_cannot_be_reset(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("active")

    assert_customer_error(await yativo.customer(customer_id, "reset", "POST"), 409, "CARD_ALREADY_ISSUED")


async def test_the_control_plane_reset_forgets_everything(yativo: Yativo) -> None:
    await yativo.customer_at("kyc_initiated")
    await yativo.client.post("/_emulator/faults", json={"path": "/nothing"})

    response = await yativo.client.post("/_emulator/reset")

    assert response.status_code == 204
    assert await yativo.messages() == []
    assert (await yativo.client.get("/_emulator/customers")).json() == {"customers": []}
    assert (await yativo.client.get("/_emulator/calls")).json() == {"calls": []}
    assert (await yativo.client.get("/_emulator/faults")).json() == {"faults": []}
    assert (await yativo.onboard("cu@example.com")).status_code == 401


# --- control plane --------------------------------------------------------------------------------


async def test_the_customers_listing_shows_each_customers_progress(yativo: Yativo) -> None:
    customer_id = await yativo.customer_at("phone_verified", email="cu@example.com", external_id="usr_1")

    (record,) = (await yativo.client.get("/_emulator/customers")).json()["customers"]

    assert record["yativo_card_id"] == customer_id
    assert record["external_customer_id"] == "usr_1"
    assert record["email"] == "cu@example.com"
    assert (record["flow_status"], record["kyc_status"]) == ("kyc_completed", "approved")
    assert (record["sof_completed"], record["phone_verified"], record["safe_deployed"]) == (True, True, True)
    assert record["cards"] == []


async def test_the_call_log_records_method_path_status_and_correlation_headers(yativo: Yativo) -> None:
    await yativo.call(
        "POST",
        "/yativo-card/customers/onboard",
        json={"email": "cu@example.com"},
        headers={"Idempotency-Key": "idem-1", "X-Request-ID": "req-1"},
    )

    calls = (await yativo.client.get("/_emulator/calls", params={"path": "/yativo-card/*"})).json()["calls"]

    (call,) = calls
    assert (call["method"], call["path"], call["status"]) == ("POST", "/yativo-card/customers/onboard", 201)
    assert (call["idempotencyKey"], call["requestId"]) == ("idem-1", "req-1")
    assert ISO_MILLIS.match(call["at"])


async def test_the_outbox_can_be_filtered_by_recipient(yativo: Yativo) -> None:
    await yativo.onboard("one@example.com")
    await yativo.onboard("two@example.com")

    assert [message["to"] for message in await yativo.messages()] == ["one@example.com", "two@example.com"]
    assert [message["to"] for message in await yativo.messages("TWO@example.com")] == ["two@example.com"]


async def test_unknown_routes_answer_in_an_envelope_not_litestars_default(yativo: Yativo) -> None:
    response = await yativo.call("GET", "/yativo-card/nothing-here")

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert "status_code" not in response.json()


# --- concurrency ----------------------------------------------------------------------------------


async def test_thirty_concurrent_onboards_of_one_email_create_exactly_one_customer(yativo: Yativo) -> None:
    responses = await asyncio.gather(*(yativo.onboard("race@example.com", "usr_race") for _ in range(30)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 29
    assert len((await yativo.client.get("/_emulator/customers")).json()["customers"]) == 1
    assert len(await yativo.messages()) == 1
