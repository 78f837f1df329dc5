"""What the service refuses, before touching the upstream: bad tokens, bad input, out-of-order steps, other users' records."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from service.onboarding.user import User
from tests.conftest import JWT_SECRET, Harness
from tests.journey import EMAIL, action, drive


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


NOW = int(time.time())
BAD_TOKENS = {
    "no token": None,
    "garbage": "Bearer not-a-jwt",
    "not bearer": "Basic dXNlcjpwYXNz",
    "expired": "Bearer " + jwt.encode({"sub": "u", "exp": NOW - 3600}, JWT_SECRET, algorithm="HS256"),
    "no exp": "Bearer " + jwt.encode({"sub": "u"}, JWT_SECRET, algorithm="HS256"),
    "no sub": "Bearer " + jwt.encode({"exp": NOW + 600}, JWT_SECRET, algorithm="HS256"),
    "wrong key": "Bearer "
    + jwt.encode({"sub": "u", "exp": NOW + 600}, "another-secret-of-32-bytes-or-more!!", algorithm="HS256"),
    "alg none": "Bearer " + b64({"alg": "none", "typ": "JWT"}) + "." + b64({"sub": "u", "exp": NOW + 600}) + ".",
    "HS512 not pinned": "Bearer "
    + jwt.encode({"sub": "u", "exp": NOW + 600}, JWT_SECRET + "x" * 32, algorithm="HS512"),
    "too large": "Bearer " + "a" * 9000,
}


@pytest.mark.parametrize("authorization", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
async def test_a_bad_token_is_401_sign_in_and_the_upstream_is_not_called(
    bff: Harness, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in (("GET", "", None), ("POST", "", {"email": EMAIL}), ("POST", "/card", None)):
        response = await bff.client.request(method, "/v1/card-onboarding" + path, json=body, headers=headers)
        assert response.status_code == 401
        problem = response.json()
        assert problem["code"] == "unauthenticated"
        assert problem["nextAction"]["type"] == "sign_in"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await bff.calls() == []


async def test_a_bad_token_with_a_bad_body_is_still_401(bff: Harness) -> None:
    response = await bff.client.post(
        "/v1/card-onboarding", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "code",
    ["12345", "1234567", "12a456", "١٢٣٤٥٦", "１２３４５６", "123456\n", " 123456", "", 123456],
    ids=[
        "short",
        "long",
        "letter",
        "arabic-indic digits",
        "fullwidth digits",
        "trailing newline",
        "leading space",
        "empty",
        "number",
    ],
)
async def test_a_code_that_is_not_six_ascii_digits_is_refused_before_the_upstream(bff: Harness, code: Any) -> None:
    await bff.post("", {"email": EMAIL})
    calls = len(await bff.calls())
    response = await bff.post("/email-verification", {"code": code})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "otp_format_invalid"
    assert action(response)["type"] == "fix_input"
    assert action(response)["errors"] == [{"field": "code", "message": "Enter the 6-digit code from the email."}]
    # The SMS step is not the current one: that is said first, whatever the code looks like.
    elsewhere = await bff.post("/phone-verification", {"code": code})
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "step_not_available")
    assert action(elsewhere)["type"] == "verify_email_code"
    assert len(await bff.calls()) == calls


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@b",
        "ada@example",
        "ada@@example.com",
        "ad a@example.com",
        "ada@exa mple.com",
        "ad\u202ea@example.com",
        "x" * 250 + "@example.com",
        "",
    ],
    ids=["no at", "no dot", "no tld", "two ats", "space", "space in domain", "bidi override", "too long", "empty"],
)
async def test_an_invalid_email_is_refused_before_the_upstream(bff: Harness, email: str) -> None:
    response = await bff.post("", {"email": email})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "email_invalid"
    assert action(response)["type"] == "fix_input"
    assert all(c["path"].endswith(("/auth/token", "/lookup-customer")) for c in await bff.calls())
    assert await bff.customers() == []


async def test_an_idn_email_is_sent_upstream_in_ascii(bff: Harness) -> None:
    response = await bff.post("", {"email": " Ada@Bücher.DE "})
    assert response.status_code == 200
    [customer] = await bff.customers()
    assert customer["email"] == "ada@xn--bcher-kva.de"


@pytest.mark.parametrize(
    "phone",
    ["4155552671", "+0155552671", "+1 415 555 2671", "+1415555267112345", "+1-415-555-2671", "tel:+14155552671"],
)
async def test_a_phone_number_not_in_e164_is_refused(bff: Harness, phone: str) -> None:
    await drive(bff, "provide_phone")
    calls = len(await bff.calls())
    response = await bff.post("/phone", {"phoneNumber": phone})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert action(response)["errors"] == [
        {"field": "phoneNumber", "message": "Enter your mobile number with its country code, like +14155552671."}
    ]
    assert len(await bff.calls()) == calls


@pytest.mark.parametrize(
    ("path", "step", "body", "status", "code", "field"),
    [
        ("", "provide_email", b"{not json", 400, "malformed_body", "body"),
        ("", "provide_email", b'{"email": "ada@example.com", "admin": true}', 422, "validation_failed", "body"),
        ("", "provide_email", b'{"email": 42}', 422, "email_invalid", "email"),
        ("", "provide_email", b"[]", 422, "validation_failed", "body"),
        ("", "provide_email", b"", 400, "malformed_body", "body"),
        ("/source-of-funds", "answer_source_of_funds", b'{"answers": []}', 422, "validation_failed", "answers"),
        (
            "/source-of-funds",
            "answer_source_of_funds",
            b'{"answers": [{"question": "EMPLOYMENT_STATUS"}]}',
            422,
            "validation_failed",
            "answers[0]",
        ),
    ],
    ids=["malformed json", "unknown field", "wrong type", "not an object", "no body", "no answers", "answer missing"],
)
async def test_a_body_that_cannot_be_used_gets_its_stable_code_and_a_message_for_people(
    bff: Harness, path: str, step: str, body: bytes, status: int, code: str, field: str
) -> None:
    await drive(bff, step)
    calls = len(await bff.calls())
    response = await bff.client.post(
        "/v1/card-onboarding" + path, content=body, headers={**bff.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["nextAction"]["type"] == "fix_input"
    assert problem["nextAction"]["endpoint"] == {"method": "POST", "path": "/v1/card-onboarding" + path}
    [error] = problem["nextAction"]["errors"]
    assert error["field"] == field
    # Written for the person at the screen: no library wording, no regex, no JSON path.
    assert not any(word in error["message"] for word in ("`", "Expected", "$.", "regex", "'data'")), error
    assert problem["requestId"] == response.headers["x-request-id"]
    assert len(await bff.calls()) == calls


async def test_a_json_body_sent_as_text_is_refused_as_the_wrong_media_type(bff: Harness) -> None:
    response = await bff.client.post(
        "/v1/card-onboarding",
        content=b'{"email": "ada@example.com"}',
        headers={**bff.auth(), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    assert action(response)["type"] == "fix_input"
    assert await bff.customers() == []


async def test_a_body_over_16_kib_is_413(bff: Harness) -> None:
    body = json.dumps({"email": "a" * 17000 + "@example.com"}).encode()
    response = await bff.client.post(
        "/v1/card-onboarding", content=body, headers={**bff.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert action(response)["type"] == "fix_input"
    assert await bff.customers() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/email-verification", {"code": "123456"}),
        ("/kyc-session", None),
        ("/source-of-funds", {"answers": [{"question": "EMPLOYMENT_STATUS", "answer": "EMPLOYED"}]}),
        ("/phone", {"phoneNumber": "+14155552671"}),
        ("/phone-verification", {"code": "123456"}),
        ("/card", None),
    ],
)
async def test_a_step_out_of_order_is_409_with_the_real_next_action_and_no_upstream_call(
    bff: Harness, path: str, body: Any
) -> None:
    await drive(bff, "verify_email_code" if path != "/email-verification" else "complete_kyc")
    expected = action(await bff.get())
    calls = len(await bff.calls())
    response = await bff.post(path, body)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "step_not_available"
    assert action(response) == expected
    assert len(await bff.calls()) == calls


async def test_a_user_typing_someone_elses_email_gets_nothing_of_their_record(bff: Harness) -> None:
    ada = await drive(bff, "complete_kyc", sub="user-ada")
    response = await bff.post("", {"email": EMAIL}, sub="user-eve")
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "email_unavailable"
    assert problem["nextAction"] == {
        "type": "use_different_email",
        "endpoint": {"method": "POST", "path": "/v1/card-onboarding"},
        "reason": "in_use",
    }
    [customer] = await bff.customers()
    assert customer["yativo_card_id"] not in response.text
    eve_keys = list(bff.redis.scan_iter(f"*{User('user-eve').uid}*"))
    for key in eve_keys:
        assert customer["yativo_card_id"].encode() not in bff.redis.dump(key)
    assert list(bff.redis.scan_iter(f"*{User('user-ada').uid}*")), "the scan pattern finds a user's keys"
    eve = await bff.get(sub="user-eve")
    assert action(eve)["type"] == "provide_email"
    assert action(await bff.get(sub="user-ada")) == action(ada)


async def test_an_email_conflict_that_does_not_name_its_owner_is_checked_by_lookup(bff: Harness) -> None:
    await drive(bff, "complete_kyc", sub="user-ada")
    [customer] = await bff.customers()
    await bff.fault(
        {
            "path": "/yativo-card/customers/onboard",
            "status": 409,
            "body": {
                "success": False,
                "error_code": "CUSTOMER_CARD_ALREADY_ACTIVE",
                "data": {
                    "yativo_card_id": customer["yativo_card_id"],
                    "flow_status": "otp_verified",
                    "next_step": "kyc_link",
                },
            },
        },
    )
    response = await bff.post("", {"email": EMAIL}, sub="user-eve")
    assert response.status_code == 409
    assert response.json()["code"] == "email_unavailable"
    assert customer["yativo_card_id"] not in response.text
    assert action(await bff.get(sub="user-eve"))["type"] == "provide_email"


@pytest.mark.parametrize(
    ("email", "status", "reason"),
    [
        ("issuer@emulator.yativo.test", 409, "issuer_email"),
        ("own-card@emulator.yativo.test", 409, "in_use"),
    ],
)
async def test_an_email_the_upstream_refuses_asks_for_another_one(
    bff: Harness, email: str, status: int, reason: str
) -> None:
    response = await bff.post("", {"email": email})
    assert response.status_code == status
    assert response.json()["code"] == "email_unavailable"
    assert action(response) == {
        "type": "use_different_email",
        "endpoint": {"method": "POST", "path": "/v1/card-onboarding"},
        "reason": reason,
    }
    assert action(await bff.get())["type"] == "provide_email"


@pytest.mark.parametrize(
    ("upstream_code", "status", "code", "reason"),
    [
        ("INVALID_EMAIL", 422, "email_invalid", "invalid"),
        ("EMAIL_ALREADY_REGISTERED", 409, "email_unavailable", "not_reusable"),
        ("EMAIL_ALREADY_IN_USE", 409, "email_unavailable", "in_use"),
        ("ISSUER_EMAIL_NOT_ALLOWED", 409, "email_unavailable", "issuer_email"),
    ],
)
async def test_every_upstream_email_refusal_maps_to_use_different_email(
    bff: Harness, upstream_code: str, status: int, code: str, reason: str
) -> None:
    await bff.fault(
        {
            "path": "/yativo-card/customers/onboard",
            "status": 400,
            "body": {"success": False, "error_code": upstream_code, "message": "no"},
        },
    )
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert action(response)["type"] == "use_different_email"
    assert action(response)["reason"] == reason


async def test_an_upstream_outage_is_503_retry_later_and_changes_nothing(bff: Harness) -> None:
    await bff.fault(
        {
            "path": "/yativo-card/customers/onboard",
            "status": 500,
            "body": "<html>down</html>",
            "contentType": "text/html",
        },
    )
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == 503
    problem = response.json()
    assert (problem["code"], problem["retryable"]) == ("upstream_unavailable", True)
    assert problem["nextAction"] == {
        "type": "retry_later",
        "endpoint": {"method": "POST", "path": "/v1/card-onboarding"},
        "retryAfterSeconds": int(response.headers["retry-after"]),
    }
    assert "down" not in response.text and "html" not in response.text
    assert action(await bff.get())["type"] == "provide_email"


async def test_a_garbled_upstream_answer_is_502_and_nothing_of_it_reaches_the_frontend(bff: Harness) -> None:
    await bff.fault(
        {
            "path": "/yativo-card/customers/onboard",
            "status": 201,
            "body": '{"success": true, "data": {"yativo_card_id": "leak-marker-7f3',
            "contentType": "application/json",
        },
    )
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_bad_response"
    assert response.json()["nextAction"]["type"] == "retry_later"
    assert "leak-marker" not in response.text
