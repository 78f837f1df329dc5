"""One circuit per upstream operation: each opens on its own failures, refuses without calling, and probes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from service.ops.breaker import CircuitBreaker, State
from service.yativo import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable, YativoClient
from service.yativo.circuits import OPERATIONS, Circuits

pytestmark = pytest.mark.retries  # the failure counts include the upstream retries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    def __init__(self, client: YativoClient, control: httpx.AsyncClient, clock: Clock) -> None:
        self.client = client
        self.control = control
        self.clock = clock

    async def fault(self, **spec: Any) -> None:
        (await self.control.post("/_emulator/faults", json=spec)).raise_for_status()

    async def heal(self) -> None:
        (await self.control.delete("/_emulator/faults")).raise_for_status()

    async def calls(self, suffix: str) -> int:
        calls = (await self.control.get("/_emulator/calls")).json()["calls"]
        return sum(1 for c in calls if c["path"].endswith(suffix))

    def state(self, circuit: str) -> State:
        return self.client.circuits[circuit].state


@pytest.fixture
async def upstream(emulator_app: Any, control: httpx.AsyncClient) -> AsyncIterator[Upstream]:
    clock = Clock()
    client = YativoClient(
        "http://emulator/api/v1",
        "yativo_test",
        "s3cret",
        transport=httpx.ASGITransport(app=emulator_app),
        circuits=Circuits(clock=clock, cooldown=5.0),
    )
    async with client:
        yield Upstream(client, control, clock)


async def test_an_onboard_outage_opens_only_the_onboard_circuit_though_lookups_succeed_between(
    upstream: Upstream,
) -> None:
    await upstream.fault(path="/yativo-card/customers/onboard", status=503, body="down")
    for n in range(5):
        assert await upstream.client.lookup_customer(external_id=f"usr_{n}") is None  # works, between each onboard
        with pytest.raises(UpstreamUnavailable) as caught:
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
        assert not caught.value.circuit_open
    assert upstream.state("onboard") is State.OPEN
    assert [c.name for c in upstream.client.circuits if c.state is not State.CLOSED] == ["onboard"]
    assert await upstream.client.lookup_customer(external_id="usr_x") is None  # still served


async def test_an_open_circuit_refuses_without_an_upstream_call_and_says_how_long_is_left(upstream: Upstream) -> None:
    await upstream.fault(path="/yativo-card/customers/onboard", status=503, body="down")
    for n in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
    before = await upstream.calls("/onboard")
    upstream.clock.now += 1.5
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.onboard("late@example.com", "usr_late")
    assert caught.value.circuit_open and caught.value.retry_after == pytest.approx(3.5)
    assert await upstream.calls("/onboard") == before


async def test_the_probe_after_the_cooldown_closes_the_circuit_once_the_operation_works(upstream: Upstream) -> None:
    await upstream.fault(path="/yativo-card/customers/onboard", status=503, body="down")
    for n in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
    upstream.clock.now += 5.0
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.onboard("probe@example.com", "usr_probe")  # the probe: still down
    assert not caught.value.circuit_open and upstream.state("onboard") is State.OPEN
    await upstream.heal()
    upstream.clock.now += 5.0
    with pytest.raises(UpstreamUnavailable):
        await upstream.client.onboard("early@example.com", "usr_early")  # the wait doubled after a failed probe
    upstream.clock.now += 5.0
    await upstream.client.onboard("ada@example.com", "usr_ada")
    assert upstream.state("onboard") is State.CLOSED


async def test_upstream_429s_count_as_failures(upstream: Upstream) -> None:
    await upstream.fault(
        path="/yativo-card/customers/onboard", status=429, headers={"Retry-After": "30"}, body={"error": "slow down"}
    )
    for n in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
    assert upstream.state("onboard") is State.OPEN


async def test_business_refusals_are_the_users_and_never_open_a_circuit(upstream: Upstream) -> None:
    for _ in range(12):
        with pytest.raises(UpstreamRejected):
            await upstream.client.verify_otp("yc_unknown", "123456")
    assert upstream.state("email_otp") is State.CLOSED


async def test_a_failing_token_endpoint_opens_the_token_circuit_and_no_operations(upstream: Upstream) -> None:
    await upstream.fault(path="/auth/token", status=503, body="down")
    for n in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
    assert upstream.state("token") is State.OPEN
    assert upstream.state("onboard") is State.CLOSED
    before = await upstream.calls("/auth/token")
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.kyc_status("yc_1")
    assert caught.value.circuit_open and await upstream.calls("/auth/token") == before
    assert upstream.state("kyc_status") is State.CLOSED


async def test_refusals_and_states_are_exported_per_circuit(upstream: Upstream) -> None:
    await upstream.fault(path="/yativo-card/customers/*/kyc-link", status=500, body="down")
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.kyc_link("yc_1")  # a read: up to three attempts each
    refused = REGISTRY.get_sample_value("card_onboarding_circuit_refusals_total", {"circuit": "kyc_link"}) or 0.0
    with pytest.raises(UpstreamUnavailable):
        await upstream.client.kyc_link("yc_1")
    assert REGISTRY.get_sample_value("card_onboarding_circuit_state", {"circuit": "kyc_link"}) == 2
    assert REGISTRY.get_sample_value("card_onboarding_circuit_refusals_total", {"circuit": "kyc_link"}) == refused + 1


async def test_timeouts_count_as_failures(remote_control: httpx.AsyncClient) -> None:
    base = str(remote_control.base_url).rstrip("/")
    circuits = Circuits(threshold=2)
    async with YativoClient(
        f"{base}/api/v1", "yativo_test", "s3cret", timeout_seconds=0.2, circuits=circuits
    ) as client:
        await client.lookup_customer(external_id="usr_warmup")  # the token first, so only the onboard is slow
        spec = {"path": "/yativo-card/customers/onboard", "latencyMs": 1000}
        (await remote_control.post("/_emulator/faults", json=spec)).raise_for_status()
        for n in range(2):
            with pytest.raises(UpstreamTimeout):
                await client.onboard(f"u{n}@example.com", f"usr_{n}")
    assert circuits["onboard"].state is State.OPEN


def test_every_circuit_exists_from_the_start_so_each_is_exported_closed() -> None:
    Circuits()
    for name in OPERATIONS:
        assert REGISTRY.get_sample_value("card_onboarding_circuit_state", {"circuit": name}) is not None


def test_a_flaky_operation_opens_on_its_failure_rate_without_a_run_of_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker("flaky", threshold=5, failure_rate=0.5, minimum_calls=10, clock=clock)
    for _ in range(4):
        breaker.failure()
        breaker.success()
        clock.now += 1
    assert breaker.state is State.CLOSED  # 4 of 8: under the minimum number of calls
    breaker.failure()
    breaker.success()
    assert breaker.state is State.CLOSED  # 5 of 10 calls, but the rate is judged when a failure comes in
    breaker.failure()
    assert breaker.state is State.OPEN  # 6 of 11


def test_failures_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker("slow", threshold=100, failure_rate=0.5, minimum_calls=4, window_seconds=10, clock=clock)
    for _ in range(3):
        breaker.failure()
    clock.now += 11
    breaker.success()
    breaker.success()
    breaker.success()
    breaker.failure()
    assert breaker.state is State.CLOSED  # 1 of 4 in the window; the 3 old failures have left it


def test_outcomes_of_calls_admitted_before_it_opened_do_not_close_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("late", threshold=2, cooldown=5.0, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # a straggler from before
    assert breaker.state is State.OPEN and breaker.allow() == pytest.approx(5.0)


async def test_only_one_probe_runs_while_half_open(upstream: Upstream) -> None:
    await upstream.fault(path="/yativo-card/customers/onboard", status=503, body="down")
    for n in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.client.onboard(f"u{n}@example.com", f"usr_{n}")
    await upstream.heal()
    await upstream.fault(path="/yativo-card/customers/onboard", latencyMs=200)
    upstream.clock.now += 5.0
    before = await upstream.calls("/onboard")
    outcomes = await asyncio.gather(
        *(upstream.client.onboard(f"p{n}@example.com", f"usr_p{n}") for n in range(5)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, UpstreamUnavailable) and o.circuit_open]
    assert len(refused) == 4
    assert await upstream.calls("/onboard") == before + 1
    assert upstream.state("onboard") is State.CLOSED
