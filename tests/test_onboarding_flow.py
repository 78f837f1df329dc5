"""The whole onboarding through the real app, against the emulator and a real redis-server."""

from __future__ import annotations

import pytest

from tests.conftest import Harness
from tests.journey import EMAIL, ORDER, PHONE, action, drive


async def test_a_new_user_is_asked_for_an_email(bff: Harness) -> None:
    response = await bff.get()
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "nextAction": {"type": "provide_email", "endpoint": {"method": "POST", "path": "/v1/card-onboarding"}},
        "progress": {"step": 1, "totalSteps": 6},
        "emailMasked": None,
        "phoneMasked": None,
        "card": None,
    }


async def test_a_new_user_goes_all_the_way_to_a_virtual_card(bff: Harness) -> None:
    started = await bff.post("", {"email": "  Ada@Example.com "})
    assert started.status_code == 200, started.text
    assert action(started)["type"] == "verify_email_code"
    assert action(started)["emailMasked"] == "ad***@example.com"
    assert action(started)["expiresAt"] is not None
    assert started.json()["progress"] == {"step": 2, "totalSteps": 6}

    verified = await bff.post("/email-verification", {"code": await bff.last_code(EMAIL, "email")})
    assert verified.status_code == 200, verified.text
    kyc = action(verified)
    assert kyc["type"] == "complete_kyc" and kyc["resubmission"] is False
    assert kyc["url"].startswith("https://") and kyc["expiresAt"] is not None
    assert kyc["endpoint"] == {"method": "POST", "path": "/v1/card-onboarding/kyc-session"}

    await bff.set_kyc(EMAIL, "in_progress")
    bff.clock.advance(6)
    waiting = await bff.get()
    assert action(waiting) == {
        "type": "wait_for_kyc",
        "endpoint": {"method": "GET", "path": "/v1/card-onboarding"},
        "pollAfterSeconds": 5,
    }

    await bff.set_kyc(EMAIL, "approved")
    bff.clock.advance(6)
    approved = await bff.get()
    sof = action(approved)
    # The upstream says create_virtual_card on approval; source of funds and phone are still due.
    assert sof["type"] == "answer_source_of_funds"
    assert [q["id"] for q in sof["questions"]] == ["EMPLOYMENT_STATUS", "SOURCE_OF_INCOME"]
    assert approved.json()["progress"]["step"] == 4

    answers = [{"question": q["id"], "answer": q["options"][0]} for q in sof["questions"]]
    answered = await bff.post("/source-of-funds", {"answers": answers})
    assert answered.status_code == 200, answered.text
    assert action(answered)["type"] == "provide_phone"

    sent = await bff.post("/phone", {"phoneNumber": PHONE})
    assert sent.status_code == 200, sent.text
    assert action(sent) == {
        "type": "verify_phone_code",
        "endpoint": {"method": "POST", "path": "/v1/card-onboarding/phone-verification"},
        "phoneMasked": "+14*******71",
    }

    phone_ok = await bff.post("/phone-verification", {"code": await bff.last_code(PHONE, "sms")})
    assert phone_ok.status_code == 200, phone_ok.text
    assert action(phone_ok)["type"] == "create_card"

    carded = await bff.post("/card")
    assert carded.status_code == 200, carded.text
    body = carded.json()
    assert action(carded)["type"] == "done"
    assert body["progress"] == {"step": 6, "totalSteps": 6}
    assert body["card"]["status"] == "active"
    [customer] = await bff.customers()
    assert body["card"]["lastFour"] == customer["cards"][0]["last_four"]

    again = await bff.post("/card")
    assert action(again)["type"] == "done"
    [customer] = await bff.customers()
    assert len(customer["cards"]) == 1

    # Nothing the frontend sees names a Yativo id or step.
    for response in (started, verified, waiting, approved, answered, sent, phone_ok, carded):
        assert "yativo" not in response.text.lower()
        assert customer["yativo_card_id"] not in response.text


async def test_the_frequent_read_is_one_redis_command_and_no_upstream_call(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    calls = len(await bff.calls())
    before = int(bff.redis.info("stats")["total_commands_processed"])
    response = await bff.get()
    after = int(bff.redis.info("stats")["total_commands_processed"])
    assert action(response)["type"] == "verify_email_code"
    assert after - before == 2  # our GET, plus the INFO that reads the counter
    assert len(await bff.calls()) == calls


async def test_kyc_review_is_re_read_at_most_once_per_poll_interval(bff: Harness) -> None:
    await drive(bff, "wait_for_kyc")
    status_calls = lambda calls: sum(c["path"].endswith("/kyc-status") for c in calls)  # noqa: E731
    before = status_calls(await bff.calls())
    for _ in range(5):
        response = await bff.get()
        assert action(response)["type"] == "wait_for_kyc"
    assert status_calls(await bff.calls()) == before
    bff.clock.advance(5)
    await bff.get()
    await bff.get()
    assert status_calls(await bff.calls()) == before + 1


@pytest.mark.parametrize(("status", "expected"), [("pending_review", True), ("pending", False)])
async def test_kyc_to_redo_or_do_gives_a_link_with_the_resubmission_flag(
    bff: Harness, status: str, expected: bool
) -> None:
    await drive(bff, "wait_for_kyc")
    await bff.set_kyc(EMAIL, status)
    bff.clock.advance(6)
    kyc = action(await bff.get())
    assert kyc["type"] == "complete_kyc"
    assert kyc["resubmission"] is expected
    assert kyc["url"].startswith("https://")


@pytest.mark.parametrize(("status", "reason"), [("rejected", "kyc_rejected"), ("expired", "kyc_expired")])
async def test_a_failed_kyc_sends_the_user_to_support(bff: Harness, status: str, reason: str) -> None:
    await drive(bff, "wait_for_kyc")
    await bff.set_kyc(EMAIL, status)
    bff.clock.advance(6)
    response = await bff.get()
    assert response.status_code == 200
    assert action(response)["type"] == "contact_support"
    assert action(response)["reason"] == reason


async def test_a_fresh_kyc_link_is_issued_on_request(bff: Harness) -> None:
    first = action(await drive(bff, "complete_kyc"))
    again = await bff.post("/kyc-session")
    assert again.status_code == 200
    assert action(again)["type"] == "complete_kyc"
    assert action(again)["url"] != first["url"]


async def test_source_of_funds_answers_are_checked_against_the_questions_offered(bff: Harness) -> None:
    await drive(bff, "answer_source_of_funds")
    calls = len(await bff.calls())
    bad = {
        "answers": [
            {"question": "EMPLOYMENT_STATUS", "answer": "ASTRONAUT"},
            {"question": "FAVOURITE_COLOUR", "answer": "BLUE"},
        ]
    }
    response = await bff.post("/source-of-funds", bad)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["nextAction"]["type"] == "fix_input"
    fields = {e["field"] for e in problem["nextAction"]["errors"]}
    assert fields == {"answers[0].answer", "answers[1].question", "answers"}
    assert len(await bff.calls()) == calls


async def test_a_wrong_phone_code_keeps_the_user_on_the_code_screen(bff: Harness) -> None:
    await drive(bff, "verify_phone_code")
    right = await bff.last_code(PHONE, "sms")
    response = await bff.post("/phone-verification", {"code": "000000" if right != "000000" else "111111"})
    assert response.status_code == 422
    assert response.json()["code"] == "otp_invalid"
    assert action(response)["type"] == "verify_phone_code"
    assert action(response)["phoneMasked"] == "+14*******71"


async def test_a_user_can_ask_for_a_new_sms_code(bff: Harness) -> None:
    await drive(bff, "verify_phone_code")
    again = await bff.post("/phone", {"phoneNumber": "+447700900123"})
    assert again.status_code == 200
    assert action(again)["phoneMasked"] == "+44********23"
    ok = await bff.post("/phone-verification", {"code": await bff.last_code("+447700900123", "sms")})
    assert action(ok)["type"] == "create_card"


async def test_the_journey_order_is_what_the_frontend_sees(bff: Harness) -> None:
    seen = []
    for step in ORDER[1:]:
        seen.append(action(await drive(bff, step))["type"])
    assert seen == ORDER[1:]
