"""Repeating a request is a resume, not a new effect: bursts and retries never send a second email or use a quota."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from service.onboarding.user import User
from service.storage import keys
from tests.conftest import Harness, harness
from tests.journey import EMAIL, action


def emails(outbox: list[dict[str, Any]]) -> int:
    return sum(1 for m in outbox if m["kind"] == "email")


def onboards(calls: list[dict[str, Any]]) -> int:
    return sum(1 for c in calls if c["path"].endswith("/customers/onboard"))


async def test_thirty_starts_over_300_ms_make_one_upstream_call_one_email_and_thirty_answers(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(control, redis_admin, transport=transport, served=True, REDIS_URL=redis_url) as bff:

        async def tap(n: int) -> Any:
            await asyncio.sleep(n * 0.01)  # a double tap, a retry after a slow answer, a second tab
            return await bff.post("", {"email": EMAIL if n % 2 else EMAIL.upper()})

        answers = await asyncio.gather(*(tap(n) for n in range(30)))
        assert [r.status_code for r in answers] == [200] * 30
        assert {action(r)["type"] for r in answers} == {"verify_email_code"}
        assert onboards(await bff.calls()) == 1
        assert emails(await bff.outbox()) == 1
        # The resumes used no quota: one start counted, nine left this hour.
        assert int(bff.redis.get(keys.user_quota(User("user-ada").uid, "start"))) == 1


async def test_twenty_five_starts_over_five_seconds_are_all_resumes_and_none_is_refused(bff: Harness) -> None:
    statuses = []
    for _ in range(25):
        statuses.append((await bff.post("", {"email": EMAIL})).status_code)
        bff.clock.advance(0.2)
    assert statuses == [200] * 25
    assert onboards(await bff.calls()) == 1
    assert emails(await bff.outbox()) == 1


async def test_after_the_cooldown_one_start_sends_exactly_one_new_code_which_verifies(bff: Harness) -> None:
    first = await bff.post("", {"email": EMAIL})
    resend_at = action(first)["resendAvailableAt"]
    assert resend_at > bff.clock_iso()
    old = await bff.last_code(EMAIL, "email")
    await bff.advance(59)
    assert action(await bff.post("", {"email": EMAIL})) == action(first)
    assert emails(await bff.outbox()) == 1
    await bff.advance(2)  # past EMAIL_RESEND_COOLDOWN_SECONDS (60)
    again = await bff.post("", {"email": EMAIL})
    assert action(again)["type"] == "verify_email_code"
    assert action(again)["resendAvailableAt"] > resend_at
    assert emails(await bff.outbox()) == 2
    fresh = await bff.last_code(EMAIL, "email")
    if fresh != old:  # the new code replaces the old one
        assert (await bff.post("/email-verification", {"code": old})).json()["code"] == "otp_invalid"
    assert action(await bff.post("/email-verification", {"code": fresh}))["type"] == "complete_kyc"


async def test_another_email_before_the_first_is_verified_starts_over_with_that_email(bff: Harness) -> None:
    await bff.post("", {"email": "ada.typo@example.com"})
    other = await bff.post("", {"email": EMAIL})
    assert action(other)["type"] == "verify_email_code"
    assert other.json()["emailMasked"] == "ad***@example.com"
    assert onboards(await bff.calls()) == 2
    # One customer, with the new email: the first (unverified) one was reset upstream.
    assert [c["email"] for c in await bff.customers()] == [EMAIL]
    code = await bff.last_code(EMAIL, "email")
    assert action(await bff.post("/email-verification", {"code": code}))["type"] == "complete_kyc"


async def test_the_cooldown_is_configurable(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(
        control, redis_admin, transport=transport, REDIS_URL=redis_url, EMAIL_RESEND_COOLDOWN_SECONDS="5"
    ) as bff:
        await bff.post("", {"email": EMAIL})
        await bff.advance(6)
        await bff.post("", {"email": EMAIL})
        assert onboards(await bff.calls()) == 2
