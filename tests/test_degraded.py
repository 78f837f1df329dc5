"""A failing KYC-status read degrades the answer, not the request: waiting users see their last known state."""

from __future__ import annotations

from tests.conftest import Harness
from tests.journey import action, drive


async def test_a_user_waiting_for_review_gets_the_last_known_state_while_kyc_status_is_down(bff: Harness) -> None:
    await drive(bff, "wait_for_kyc")
    await bff.fault({"path": "/yativo-card/customers/*/kyc-status", "status": 503, "body": "down"})
    bff.clock.advance(6)  # a poll is due
    before = (await bff.client.get("/metrics")).text
    answer = await bff.get()
    assert answer.status_code == 200, answer.text
    assert action(answer)["type"] == "wait_for_kyc"
    assert action(answer)["pollAfterSeconds"] == 5
    after = (await bff.client.get("/metrics")).text
    line = 'card_onboarding_degraded_answers_total{reason="kyc_status"}'
    assert _value(after, line) == _value(before, line) + 1


async def test_new_users_start_and_verify_their_email_during_a_kyc_status_outage(bff: Harness) -> None:
    await bff.fault({"path": "/yativo-card/customers/*/kyc-status", "status": 503, "body": "down"})
    for n in range(3):
        sub, email = f"user-{n}", f"user{n}@example.com"
        started = await bff.post("", {"email": email}, sub)
        assert action(started)["type"] == "verify_email_code", started.text
        code = await bff.last_code(email, "email")
        verified = await bff.post("/email-verification", {"code": code}, sub)
        assert action(verified)["type"] == "complete_kyc", verified.text


def _value(text: str, line: str) -> float:
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    return 0.0
