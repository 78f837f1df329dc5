"""Input limits the upstream never sees past: bounded strings, strict types, one normal form for emails."""

from __future__ import annotations

from typing import Any

import pytest

from service.onboarding.inputs import normalize_email
from tests.conftest import Harness
from tests.journey import EMAIL, action, drive

UPSTREAM_WRITES = ("/onboard", "/verify-otp", "/source-of-funds", "/phone/request-verification", "/phone/verify")


async def writes(bff: Harness) -> list[str]:
    return [c["path"] for c in await bff.calls() if c["method"] == "POST" and c["path"].endswith(UPSTREAM_WRITES)]


@pytest.mark.parametrize(
    "email",
    [
        "ada\x00@example.com",
        "ada\u200b@example.com",
        "ada@exam\u200dple.com",
        "ada\u2028@example.com",
        "ada\t@example.com",
        "\u2066ada@example.com",
    ],
    ids=["nul", "zero-width space", "zero-width joiner in domain", "line separator", "tab inside", "bidi isolate"],
)
async def test_an_email_with_control_or_invisible_characters_is_422_before_the_upstream(
    bff: Harness, email: str
) -> None:
    response = await bff.post("", {"email": email})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "email_invalid"
    assert action(response)["type"] == "fix_input"
    assert await writes(bff) == []


@pytest.mark.parametrize(
    "spelling",
    [" ADA@Example.COM ", "Ada@EXAMPLE.com", "\tada@example.com\n"],
    ids=["upper case with spaces", "mixed case", "tab and newline around"],
)
async def test_every_spelling_of_one_email_is_the_same_email(spelling: str) -> None:
    assert normalize_email(spelling) == EMAIL


async def test_two_spellings_of_one_email_make_one_upstream_customer(bff: Harness) -> None:
    first = await bff.post("", {"email": "Ada@Example.com"})
    again = await bff.post("", {"email": " ada@EXAMPLE.COM "})
    assert first.status_code == again.status_code == 200
    assert [c["email"] for c in await bff.customers()] == [EMAIL]


def test_an_idn_domain_is_the_same_in_unicode_and_punycode() -> None:
    assert normalize_email("ada@bücher.de") == normalize_email("ADA@XN--BCHER-KVA.DE") == "ada@xn--bcher-kva.de"


@pytest.mark.parametrize(
    ("step", "path", "body", "code", "field"),
    [
        (
            "answer_source_of_funds",
            "/source-of-funds",
            {"answers": [{"question": "Q" * 65, "answer": "A"}]},
            "validation_failed",
            "answers[0].question",
        ),
        (
            "answer_source_of_funds",
            "/source-of-funds",
            {"answers": [{"question": "Q", "answer": "A" * 129}]},
            "validation_failed",
            "answers[0].answer",
        ),
        (
            "answer_source_of_funds",
            "/source-of-funds",
            {"answers": [{"question": f"Q{i}", "answer": "A"} for i in range(21)]},
            "validation_failed",
            "answers",
        ),
        ("provide_phone", "/phone", {"phoneNumber": "+1" + "4" * 15}, "validation_failed", "phoneNumber"),
        ("provide_phone", "/phone", {"phoneNumber": 14155552671}, "validation_failed", "phoneNumber"),
        ("verify_phone_code", "/phone-verification", {"code": 123456}, "otp_format_invalid", "code"),
        ("provide_email", "", {"email": ["ada@example.com"]}, "email_invalid", "email"),
        ("provide_email", "", {"email": "a" * 250 + "@example.com"}, "email_invalid", "email"),
    ],
    ids=[
        "question over 64 chars",
        "answer over 128 chars",
        "21 answers",
        "phone over 16 chars",
        "phone as a number",
        "code as a number",
        "email as a list",
        "email over 254 chars",
    ],
)
async def test_an_over_long_or_wrongly_typed_field_is_422_naming_it_and_the_upstream_is_not_called(
    bff: Harness, step: str, path: str, body: dict[str, Any], code: str, field: str
) -> None:
    await drive(bff, step)
    before = await writes(bff)
    response = await bff.post(path, body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert action(response)["type"] == "fix_input"
    assert [e["field"] for e in action(response)["errors"]] == [field]
    assert await writes(bff) == before


async def test_a_yativo_id_sent_by_the_client_is_refused_not_used(bff: Harness) -> None:
    await drive(bff, "verify_email_code", sub="user-ada")
    [ada] = await bff.customers()
    response = await bff.post("", {"email": "eve@example.com", "yativo_card_id": ada["yativo_card_id"]}, sub="user-eve")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert action(response)["type"] == "fix_input"
    assert [c["email"] for c in await bff.customers()] == [EMAIL]
    query = await bff.client.get(
        "/v1/card-onboarding", params={"yativo_card_id": ada["yativo_card_id"]}, headers=bff.auth("user-eve")
    )
    assert action(query)["type"] == "provide_email"
    assert ada["yativo_card_id"] not in query.text
