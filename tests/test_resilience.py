"""Bounded time and clear answers whatever the upstream does: socket faults, ambiguous creates, 429s, outages."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.ops.breaker import State
from service.yativo.circuits import Circuits
from tests.conftest import Harness, harness
from tests.faulty_upstream import FaultyUpstream
from tests.journey import EMAIL, action, drive

pytestmark = pytest.mark.retries  # these tests are about the upstream retries

DEADLINE = 1.5


@pytest.fixture
async def faulty(control: httpx.AsyncClient, redis_url: str, redis_admin: Any) -> AsyncIterator[tuple[Harness, Any]]:
    async with (
        FaultyUpstream() as upstream,
        harness(
            control,
            redis_admin,
            YATIVO_BASE_URL=upstream.base_url,
            YATIVO_TIMEOUT_SECONDS="0.5",
            REQUEST_DEADLINE_SECONDS=str(DEADLINE),
            REDIS_URL=redis_url,
            served=True,  # the faulty server runs in this event loop, so the app must too
        ) as bff,
    ):
        yield bff, upstream


@pytest.fixture
async def on_socket(
    remote_control: httpx.AsyncClient, emulator_server: str, redis_url: str, redis_admin: Any
) -> AsyncIterator[Harness]:
    """The service against the emulator on a real loopback socket, with short timeouts."""
    async with harness(
        remote_control,
        redis_admin,
        YATIVO_BASE_URL=f"{emulator_server}/api/v1",
        YATIVO_TIMEOUT_SECONDS="0.5",
        REQUEST_DEADLINE_SECONDS="3",
        REDIS_URL=redis_url,
    ) as bff:
        yield bff


def assert_retry_later(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code and problem["retryable"] is True
    assert problem["nextAction"]["type"] == "retry_later"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("mode", ["stall", "drip"])
async def test_an_upstream_that_stalls_or_drips_ends_in_504_within_the_deadline(
    faulty: tuple[Harness, FaultyUpstream], mode: str
) -> None:
    bff, upstream = faulty
    upstream.modes["/card-issuer/lookup-customer"] = mode
    started = time.monotonic()
    response = await bff.get()
    elapsed = time.monotonic() - started
    assert_retry_later(response, 504, "upstream_timeout")
    assert elapsed < DEADLINE + 1.0  # the deadline, not the 5 s per-phase timeouts or the drip's 30 s


async def test_a_connection_reset_mid_body_on_a_read_is_retried_then_503(
    faulty: tuple[Harness, FaultyUpstream],
) -> None:
    bff, upstream = faulty
    upstream.modes["/card-issuer/lookup-customer"] = "reset"
    response = await bff.get()
    assert_retry_later(response, 503, "upstream_unavailable")
    assert upstream.requests["/card-issuer/lookup-customer"] == 3  # bounded retries of a read
    assert "CUSTOMER" not in response.text


async def test_a_create_whose_connection_closes_is_never_resent_blindly(faulty: tuple[Harness, FaultyUpstream]) -> None:
    bff, upstream = faulty
    upstream.modes["/yativo-card/customers/onboard"] = "close"
    response = await bff.post("", {"email": EMAIL})
    assert_retry_later(response, 503, "upstream_unavailable")
    assert upstream.requests["/yativo-card/customers/onboard"] == 1
    # The next attempt reads the upstream before it sends the create again.
    upstream.modes.clear()
    order_before = len(upstream.order)
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == 200
    assert upstream.order[order_before:] == ["GET /card-issuer/lookup-customer", "POST /yativo-card/customers/onboard"]


async def test_an_onboard_committed_before_the_connection_dropped_is_found_by_lookup_not_recreated(
    on_socket: Harness,
) -> None:
    bff = on_socket
    await bff.fault({"path": "/yativo-card/customers/onboard", "drop": True, "after": True, "times": 1})
    response = await bff.post("", {"email": EMAIL})
    assert_retry_later(response, 503, "upstream_unavailable")
    response = await bff.get()
    assert response.status_code == 200
    assert action(response)["type"] == "verify_email_code"
    calls = await bff.calls()
    assert [c["path"] for c in calls if c["method"] == "POST"].count("/yativo-card/customers/onboard") == 1
    assert len(await bff.customers()) == 1
    assert len(await bff.outbox()) == 1


async def test_a_card_created_after_our_timeout_is_found_and_never_issued_twice(on_socket: Harness) -> None:
    bff = on_socket
    await drive(bff, "create_card")
    await bff.fault({"path": "/yativo-card/customers/*/cards/virtual", "latencyMs": 1200, "after": True, "times": 1})
    response = await bff.post("/card")
    assert_retry_later(response, 504, "upstream_timeout")
    await asyncio.sleep(1.0)  # let the emulator finish committing the card it was asked for
    response = await bff.post("/card")
    assert response.status_code == 200
    assert action(response)["type"] == "done"
    assert response.json()["card"]["lastFour"]
    calls = await bff.calls()
    creates = [c for c in calls if c["method"] == "POST" and c["path"].endswith("/cards/virtual")]
    assert len(creates) == 1
    (customer,) = await bff.customers()
    assert len(customer["cards"]) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7),
        ("http-date", 20),
        ("soon-ish", 2),
        ("99999", 60),
    ],
    ids=["seconds", "http-date", "garbage", "capped"],
)
async def test_an_upstream_429_is_503_with_the_retry_after_it_asked_for(
    bff: Harness, retry_after: str, expected: int
) -> None:
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 20, usegmt=True)
    await bff.fault(
        {"path": "/yativo-card/customers/onboard", "status": 429, "headers": {"Retry-After": retry_after}, "body": "{}"}
    )
    response = await bff.post("", {"email": EMAIL})
    assert_retry_later(response, 503, "upstream_unavailable")
    assert abs(int(response.headers["retry-after"]) - expected) <= 1
    assert response.json()["nextAction"]["retryAfterSeconds"] == int(response.headers["retry-after"])


async def test_an_unknown_flow_status_is_a_safe_next_action_not_a_500(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    await bff.fault(
        {
            "path": "/yativo-card/customers/*/verify-otp",
            "status": 200,
            "body": {"success": True, "data": {"flow_status": "quantum_review", "next_step": "levitate"}},
        }
    )
    response = await bff.post("/email-verification", {"code": await bff.last_code(EMAIL, "email")})
    assert response.status_code == 200
    assert action(response) == {
        "type": "contact_support",
        "endpoint": {"method": "GET", "path": "/v1/card-onboarding"},
        "reason": "unknown_state",
    }
    assert "quantum" not in response.text and "levitate" not in response.text


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200, "body": "x" * (300 * 1024), "contentType": "application/json"},
        {"status": 302, "headers": {"Location": "https://leakmarker.example/"}, "body": ""},
        {"status": 200, "body": {"success": True, "data": {"leakmarker": "shape"}}},
    ],
    ids=["huge-body", "redirect", "missing-fields"],
)
async def test_upstream_garbage_is_502_and_none_of_it_reaches_the_frontend(bff: Harness, fault: dict[str, Any]) -> None:
    await bff.fault({"path": "/yativo-card/customers/onboard", **fault})
    response = await bff.post("", {"email": EMAIL})
    assert_retry_later(response, 502, "upstream_bad_response")
    assert "leakmarker" not in response.text and "xxxx" not in response.text


async def test_a_long_outage_opens_the_breaker_which_answers_at_once_and_recovers_by_itself(bff: Harness) -> None:
    now = [1000.0]
    bff.client.app.state.yativo._circuits = Circuits(threshold=3, cooldown=5.0, clock=lambda: now[0])
    breaker = bff.client.app.state.yativo.circuits["lookup"]
    await bff.fault({"path": "/card-issuer/*", "status": 503, "body": "<html>down</html>"})
    for _ in range(3):
        assert_retry_later(await bff.get(), 503, "upstream_unavailable")
    assert breaker.state is State.OPEN
    ready = await bff.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["openCircuits"] == ["lookup"]
    calls_before = len(await bff.calls())
    response = await bff.get()
    assert_retry_later(response, 503, "upstream_unavailable")
    assert len(await bff.calls()) == calls_before  # answered without asking the upstream
    (await bff.control.delete("/_emulator/faults")).raise_for_status()
    now[0] += 5.0  # the cooldown has passed: the next request is the probe
    response = await bff.get()
    assert response.status_code == 200 and action(response)["type"] == "provide_email"
    assert breaker.state is State.CLOSED
    assert (await bff.client.get("/readyz")).json()["openCircuits"] == []


async def test_a_refused_connection_is_503_retry_later(
    control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    from tests.conftest import free_port

    async with harness(
        control, redis_admin, YATIVO_BASE_URL=f"http://127.0.0.1:{free_port()}/api/v1", REDIS_URL=redis_url
    ) as bff:
        response = await bff.get()
    assert_retry_later(response, 503, "upstream_unavailable")
