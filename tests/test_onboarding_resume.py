"""Resuming: repeated starts, upstream "resume" answers, expired codes, and a Redis that lost everything."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness
from tests.journey import EMAIL, ORDER, PHONE, action, drive


def onboard_calls(calls: list[dict[str, Any]]) -> int:
    return sum(c["path"].endswith("/onboard") for c in calls)


async def test_starting_twice_with_the_same_email_resumes_without_a_second_customer_or_email(bff: Harness) -> None:
    first = await bff.post("", {"email": EMAIL})
    second = await bff.post("", {"email": EMAIL.upper()})
    assert second.status_code == 200
    assert action(second)["type"] == "verify_email_code"
    assert action(second)["emailMasked"] == action(first)["emailMasked"]
    assert len(await bff.customers()) == 1
    assert [m["kind"] for m in await bff.outbox()] == ["email"]


async def test_starting_again_with_another_email_before_verifying_starts_over_with_it(bff: Harness) -> None:
    await bff.post("", {"email": EMAIL})
    other = await bff.post("", {"email": "someone.else@example.com"})
    assert other.status_code == 200
    assert action(other)["type"] == "verify_email_code"
    assert other.json()["emailMasked"] == "so***@example.com"
    assert [c["email"] for c in await bff.customers()] == ["someone.else@example.com"]


async def test_starting_again_after_the_email_code_resumes_at_the_identity_check(bff: Harness) -> None:
    await drive(bff, "complete_kyc")
    calls = onboard_calls(await bff.calls())
    again = await bff.post("", {"email": EMAIL})
    assert again.status_code == 200
    assert action(again)["type"] == "complete_kyc"
    assert onboard_calls(await bff.calls()) == calls  # past the email steps: nothing to start


async def test_starting_again_when_onboarded_answers_done(bff: Harness) -> None:
    await drive(bff, "done")
    again = await bff.post("", {"email": EMAIL})
    assert again.status_code == 200
    assert action(again)["type"] == "done"
    assert again.json()["card"]["status"] == "active"


# verify_email_code and complete_kyc come back as CUSTOMER_CARD_ALREADY_ACTIVE, done as CUSTOMER_ALREADY_ONBOARDED.
@pytest.mark.parametrize("reached", ["verify_email_code", "complete_kyc", "done"])
async def test_an_upstream_resume_answer_to_a_start_is_a_2xx_with_the_right_next_action(
    bff: Harness, reached: str
) -> None:
    await drive(bff, reached)
    bff.redis.flushall()
    # The lookup misses once (as if the customer were not indexed yet), so the start reaches onboard.
    await bff.fault(
        {
            "path": "/card-issuer/lookup-customer",
            "status": 404,
            "body": {"success": False, "error": "CUSTOMER_NOT_FOUND"},
            "times": 1,
        },
    )
    resumed = await bff.post("", {"email": EMAIL})
    assert resumed.status_code == 200, resumed.text
    assert action(resumed)["type"] == reached
    onboards = [c for c in await bff.calls() if c["path"].endswith("/onboard")]
    assert onboards[-1]["status"] == 409  # found by the same email
    assert len(await bff.customers()) == 1


async def test_an_expired_email_code_is_renewed_by_starting_again(bff: Harness) -> None:
    await bff.post("", {"email": EMAIL})
    stale = await bff.last_code(EMAIL, "email")
    await bff.control.post("/_emulator/clock", json={"advanceSeconds": 601})
    expired = await bff.post("/email-verification", {"code": stale})
    assert expired.status_code == 422
    assert expired.json()["code"] == "otp_expired"
    # Still the code screen, offering a new code at once; GET says the same.
    assert action(expired)["type"] == "verify_email_code"
    assert action(expired)["resendAvailableAt"] is not None
    assert action(await bff.get()) == action(expired)
    restarted = await bff.post("", {"email": EMAIL})
    assert action(restarted)["type"] == "verify_email_code"
    fresh = await bff.last_code(EMAIL, "email")
    assert len([m for m in await bff.outbox() if m["kind"] == "email"]) == 2
    verified = await bff.post("/email-verification", {"code": fresh})
    assert action(verified)["type"] == "complete_kyc"


async def test_a_wrong_email_code_says_so_and_keeps_the_user_on_the_code_screen(bff: Harness) -> None:
    await bff.post("", {"email": EMAIL})
    right = await bff.last_code(EMAIL, "email")
    wrong = await bff.post("/email-verification", {"code": "000000" if right != "000000" else "111111"})
    assert wrong.status_code == 422
    problem = wrong.json()
    assert (problem["code"], problem["retryable"], problem["status"]) == ("otp_invalid", False, 422)
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert action(wrong)["type"] == "verify_email_code"
    assert action(wrong)["emailMasked"] == "ad***@example.com"


# After a flush the service re-finds the customer by its external id and resumes. Two facts exist only in
# our records (a phone code was sent; the phone was verified): the user re-enters the phone number once.
AFTER_FLUSH = {
    "verify_email_code": "verify_email_code",
    "complete_kyc": "complete_kyc",
    "wait_for_kyc": "wait_for_kyc",
    "answer_source_of_funds": "answer_source_of_funds",
    "provide_phone": "provide_phone",
    "verify_phone_code": "provide_phone",
    "create_card": "provide_phone",
    "done": "done",
}


@pytest.mark.parametrize("step", list(AFTER_FLUSH))
async def test_a_flushed_redis_loses_no_ones_progress(bff: Harness, step: str) -> None:
    before = await drive(bff, step)
    bff.redis.flushall()
    after = await bff.get()
    assert after.status_code == 200, after.text
    assert action(after)["type"] == AFTER_FLUSH[step]
    assert after.json()["emailMasked"] == "ad***@example.com"
    if step == "done":
        assert after.json()["card"] == before.json()["card"]
    # ... and the journey goes on to one card for one customer.
    await drive(bff, "done")
    [customer] = await bff.customers()
    assert len(customer["cards"]) == 1
    assert len([m for m in await bff.outbox() if m["kind"] == "email"]) == 1


async def test_after_a_flush_the_card_is_not_issued_twice(bff: Harness) -> None:
    await drive(bff, "create_card")
    bff.redis.flushall()
    await bff.post("/phone", {"phoneNumber": PHONE})
    response = await bff.post("/card")
    assert action(response)["type"] == "done"
    [customer] = await bff.customers()
    assert len(customer["cards"]) == 1


@pytest.mark.parametrize("step", ORDER[1:])
async def test_a_flush_in_the_middle_of_each_step_only_costs_a_lookup(bff: Harness, step: str) -> None:
    await drive(bff, step)
    bff.redis.flushall()
    before = await bff.calls()
    await bff.get()
    lookups = [c for c in (await bff.calls())[len(before) :] if c["path"].endswith("/lookup-customer")]
    assert len(lookups) == 1


async def test_an_already_onboarded_answer_without_a_card_resumes_after_kyc_not_at_done(bff: Harness) -> None:
    await drive(bff, "answer_source_of_funds")
    [customer] = await bff.customers()
    bff.redis.flushall()
    ours = customer["external_customer_id"]
    await bff.fault(
        {
            "path": "/card-issuer/lookup-customer",
            "status": 404,
            "body": {"success": False, "error": "CUSTOMER_NOT_FOUND"},
            "times": 1,
        },
    )
    await bff.fault(
        {
            "path": "/yativo-card/customers/onboard",
            "times": 1,
            "status": 409,
            "body": {
                "success": False,
                "error_code": "CUSTOMER_ALREADY_ONBOARDED",
                "data": {
                    "yativo_card_id": customer["yativo_card_id"],
                    "flow_status": "kyc_approved",
                    "external_customer_id": ours,
                    "next_step": "none",
                },
            },
        },
    )
    resumed = await bff.post("", {"email": EMAIL})
    assert resumed.status_code == 200, resumed.text
    assert action(resumed)["type"] == "answer_source_of_funds"
    assert resumed.json()["progress"]["step"] == 4
    assert resumed.json()["card"] is None
    await drive(bff, "done")
