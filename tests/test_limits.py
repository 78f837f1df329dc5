"""Code guessing and sending quotas: refused with 429 before the upstream is asked, across replicas, fail closed."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.storage.limits import client_address
from tests.conftest import Harness, harness
from tests.journey import EMAIL, PHONE, action, drive
from tests.test_redis_faults import OwnRedis


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def verify_calls(calls: list[dict[str, Any]], suffix: str) -> int:
    return sum(1 for c in calls if c["path"].endswith(suffix))


def assert_attempts_exceeded(response: httpx.Response, path: str) -> None:
    assert response.status_code == 429, response.text
    problem = response.json()
    assert problem["code"] == "otp_attempts_exceeded"
    assert problem["nextAction"]["type"] == "retry_later"
    assert problem["nextAction"]["endpoint"]["path"] == path
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["ratelimit-remaining"] == "0"


@pytest.fixture
async def two_replicas(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> AsyncIterator[tuple[Harness, Harness]]:
    transport = httpx.ASGITransport(app=emulator_app)
    async with (
        harness(control, redis_admin, transport=transport, REDIS_URL=redis_url) as a,
        harness(control, redis_admin, transport=transport, REDIS_URL=redis_url) as b,
    ):
        yield a, b


def assert_new_code_offered(response: httpx.Response) -> None:
    """One code's tries are used up: 429 that says so and offers a new code at once, not an hour's wait."""
    assert response.status_code == 429, response.text
    problem = response.json()
    assert problem["code"] == "otp_attempts_exceeded"
    assert problem["nextAction"]["type"] == "verify_email_code"
    assert problem["nextAction"]["resendAvailableAt"] is not None
    assert int(response.headers["retry-after"]) == 1


async def test_five_wrong_email_codes_then_a_sixth_try_tell_one_story_on_every_replica(
    two_replicas: tuple[Harness, Harness],
) -> None:
    a, b = two_replicas
    await drive(a, "verify_email_code")
    right = await a.last_code(EMAIL, "email")
    for attempt in range(5):
        response = await (a, b)[attempt % 2].post("/email-verification", {"code": wrong(right)})
        assert (response.status_code, response.json()["code"]) == (422, "otp_invalid")
        assert response.json()["nextAction"]["type"] == "verify_email_code"
    # The fifth wrong try spent the code: from now on a new one is offered at once.
    spent = response.json()["nextAction"]
    assert spent["resendAvailableAt"] <= a.clock_iso()
    calls = verify_calls(await a.calls(), "/verify-otp")
    assert calls == 5
    # The sixth try is refused on either replica, even with the right code, and the upstream is not asked.
    for node in (a, b):
        sixth = await node.post("/email-verification", {"code": right})
        assert_new_code_offered(sixth)
        assert sixth.json()["nextAction"] == spent
        assert action(await node.get()) == spent  # GET says the same
    assert verify_calls(await a.calls(), "/verify-otp") == calls
    # Starting again sends exactly one new code at once (no cooldown for a spent code), and it verifies.
    emails = len([m for m in await a.outbox() if m["kind"] == "email"])
    restarted = await b.post("", {"email": EMAIL})
    assert action(restarted)["type"] == "verify_email_code"
    assert len([m for m in await a.outbox() if m["kind"] == "email"]) == emails + 1
    fresh = await a.last_code(EMAIL, "email")
    assert action(await a.post("/email-verification", {"code": fresh}))["type"] == "complete_kyc"


async def test_a_new_email_code_gets_new_tries_but_the_hourly_limit_still_holds(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    for wrong_tries in (4, 4, 2):  # three issued codes, ten wrong tries in all
        code = await bff.last_code(EMAIL, "email")
        for _ in range(wrong_tries):
            assert (await bff.post("/email-verification", {"code": wrong(code)})).json()["code"] == "otp_invalid"
        # Let that code expire and ask for a new one: a new issue with tries of its own.
        await bff.control.post("/_emulator/clock", json={"advanceSeconds": 601})
        bff.clock.advance(601)
        assert action(await bff.post("", {"email": EMAIL}))["type"] == "verify_email_code"
    before = verify_calls(await bff.calls(), "/verify-otp")
    code = await bff.last_code(EMAIL, "email")
    assert_attempts_exceeded(
        await bff.post("/email-verification", {"code": code}), "/v1/card-onboarding/email-verification"
    )
    assert verify_calls(await bff.calls(), "/verify-otp") == before


async def test_right_codes_and_upstream_failures_use_up_no_tries(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    code = await bff.last_code(EMAIL, "email")
    await bff.fault({"path": "/yativo-card/customers/*/verify-otp", "status": 503, "body": "down", "times": 4})
    for _ in range(4):
        assert (await bff.post("/email-verification", {"code": code})).status_code == 503
    for _ in range(4):
        assert (await bff.post("/email-verification", {"code": wrong(code)})).json()["code"] == "otp_invalid"
    # Eight tries so far, but only the four wrong ones count against the five allowed.
    assert action(await bff.post("/email-verification", {"code": code}))["type"] == "complete_kyc"


async def test_a_brute_forced_sms_code_is_refused_after_five_tries_and_a_new_code_is_offered(bff: Harness) -> None:
    await drive(bff, "verify_phone_code")
    right = await bff.last_code(PHONE, "sms")
    for _ in range(5):
        assert (await bff.post("/phone-verification", {"code": wrong(right)})).json()["code"] == "otp_invalid"
    before = verify_calls(await bff.calls(), "/phone/verify")
    sixth = await bff.post("/phone-verification", {"code": right})
    assert (sixth.status_code, sixth.json()["code"]) == (429, "otp_attempts_exceeded")
    # That code is spent: the answer (and GET) offer a new SMS code at once, not an hour's wait.
    assert action(sixth)["type"] == "provide_phone"
    assert action(await bff.get())["type"] == "provide_phone"
    assert verify_calls(await bff.calls(), "/phone/verify") == before
    bff.clock.advance(1)
    assert action(await bff.post("/phone", {"phoneNumber": PHONE}))["type"] == "verify_phone_code"
    fresh = await bff.last_code(PHONE, "sms")
    assert action(await bff.post("/phone-verification", {"code": fresh}))["type"] == "create_card"


async def test_code_counters_fail_closed_when_redis_is_down(emulator_app: Any, control: httpx.AsyncClient) -> None:
    own = OwnRedis()
    own.start()
    async with harness(
        control, own.client(), transport=httpx.ASGITransport(app=emulator_app), REDIS_URL=own.url
    ) as bff:
        await drive(bff, "verify_email_code")
        code = await bff.last_code(EMAIL, "email")
        own.kill()
        response = await bff.post("/email-verification", {"code": code})
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "service_unavailable"
        assert response.json()["nextAction"]["type"] == "retry_later"
        assert verify_calls(await bff.calls(), "/verify-otp") == 0
        # Reads still work through the upstream: only the guessing counters fail closed.
        assert action(await bff.get())["type"] == "verify_email_code"


async def test_starting_over_and_over_hits_the_per_user_quota_without_sending_more_emails(bff: Harness) -> None:
    for _ in range(10):
        assert (await bff.post("", {"email": EMAIL})).status_code == 200
        bff.clock.advance(61)  # past the resend cooldown: each start asks for a new code and counts
    onboards = verify_calls(await bff.calls(), "/customers/onboard")
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert response.json()["nextAction"]["type"] == "retry_later"
    assert response.headers["ratelimit-limit"] == "10" and int(response.headers["retry-after"]) > 0
    assert verify_calls(await bff.calls(), "/customers/onboard") == onboards


async def test_many_users_from_one_address_hit_the_per_address_quota(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(
        control, redis_admin, transport=transport, served=True, REDIS_URL=redis_url, START_QUOTA_PER_ADDRESS="5"
    ) as bff:
        statuses = [(await bff.post("", {"email": f"u{n}@example.com"}, sub=f"user-{n}")).status_code for n in range(6)]
    assert statuses == [200] * 5 + [429]  # the 6th user from 127.0.0.1 this hour, with the quota set to 5


async def test_a_per_address_quota_of_zero_counts_no_address(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(
        control, redis_admin, transport=transport, served=True, REDIS_URL=redis_url, START_QUOTA_PER_ADDRESS="0"
    ) as bff:
        statuses = [(await bff.post("", {"email": f"u{n}@example.com"}, sub=f"user-{n}")).status_code for n in range(3)]
    assert statuses == [200] * 3
    assert not redis_admin.keys("bff:{ip:*")


TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # an untrusted peer cannot choose its address
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),  # the gateway says who called it
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # what the client itself wrote is ignored
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # through two trusted hops
        ("10.1.2.3", "not-an-ip", "10.1.2.3"),  # garbage ends the chain at the last real proxy
    ],
)
def test_the_client_address_comes_only_from_trusted_proxies(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == expected


async def test_a_refused_try_costs_nothing_so_a_new_code_still_gets_its_tries(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    code = await bff.last_code(EMAIL, "email")
    for _ in range(4):
        assert (await bff.post("/email-verification", {"code": wrong(code)})).json()["code"] == "otp_invalid"
    assert (await bff.post("/email-verification", {"code": wrong(code)})).json()["code"] == "otp_invalid"
    for _ in range(3):  # refused by us, not tried: they must not eat into the hourly budget
        assert_new_code_offered(await bff.post("/email-verification", {"code": code}))
    await bff.control.post("/_emulator/clock", json={"advanceSeconds": 601})
    bff.clock.advance(601)
    await bff.post("", {"email": EMAIL})
    fresh = await bff.last_code(EMAIL, "email")
    for _ in range(4):  # five wrong so far this hour: five more are allowed
        assert (await bff.post("/email-verification", {"code": wrong(fresh)})).json()["code"] == "otp_invalid"
    assert action(await bff.post("/email-verification", {"code": fresh}))["type"] == "complete_kyc"
