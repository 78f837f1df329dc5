"""The circuit breakers: closed, open, one probe at a time, and never stuck when a probing call is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from service.ops.breaker import CircuitBreaker, State
from service.storage.limits import Limits, LimitsUnavailable
from service.storage.store import StateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HangingRedis:
    """A Redis that accepts a command and never answers (a frozen server, seen from the client)."""

    async def get(self, name: str) -> Any:
        await asyncio.Event().wait()

    def register_script(self, script: str) -> Any:
        async def run(**_: Any) -> Any:
            await asyncio.Event().wait()

        return run


def opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker("test", threshold=1, cooldown=5.0, clock=clock)
    breaker.failure()
    assert breaker.state is State.OPEN
    clock.now += 5.0  # cooled down: the next call is the one probe
    return breaker


def test_one_probe_at_a_time_and_a_failed_probe_reopens_for_longer() -> None:
    clock = Clock()
    breaker = opened(clock)
    assert breaker.allow() is None and breaker.state is State.HALF_OPEN
    assert breaker.allow() is not None  # a second caller waits for the probe
    breaker.failure()
    assert breaker.state is State.OPEN
    clock.now += 5.0
    assert breaker.allow() is not None  # the cooldown doubled
    clock.now += 5.0
    assert breaker.allow() is None
    breaker.success()
    assert breaker.state is State.CLOSED and breaker.allow() is None


@pytest.mark.parametrize("call", ["state cache read", "code counter"])
async def test_a_cancelled_probe_frees_the_breaker_instead_of_leaving_it_half_open_forever(call: str) -> None:
    clock = Clock()
    breaker = opened(clock)
    store = StateStore(HangingRedis(), breaker=breaker)  # type: ignore[arg-type]
    limits = Limits(HangingRedis(), breaker)
    probe = store.load("u1") if call == "state cache read" else limits.code_attempt("u1", "email", "1")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await probe
    assert breaker.allow() is None  # the next call may probe again


async def test_code_counters_refuse_while_the_redis_breaker_is_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker("test", threshold=1, cooldown=5.0, clock=clock)
    breaker.failure()
    with pytest.raises(LimitsUnavailable):
        await Limits(fakeredis.FakeAsyncRedis(), breaker).code_attempt("u1", "email", "1")


async def test_a_refund_never_makes_a_counter_negative_or_immortal() -> None:
    redis = fakeredis.FakeAsyncRedis()
    limits = Limits(redis, CircuitBreaker("test"))
    await limits.code_attempt("u1", "email", "1")
    await redis.flushall()  # the window ended between the attempt and its refund
    await limits.refund_code_attempt("u1", "email", "1")
    assert await redis.keys("*") == []
