"""Redis down, killed, stalled, paused, flushed or restarted: the service stays up and loses no one's progress."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import Harness, free_port, harness, redis_server, stop, wait_until_listening
from tests.journey import EMAIL, action, drive


class OwnRedis:
    """A redis-server this test may kill, freeze and restart (on the same port)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_listening(self.port, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.thaw()
            stop(server.process)


@pytest.fixture
async def bff_on_own_redis(
    emulator_app: Any, control: httpx.AsyncClient, own_redis: OwnRedis
) -> AsyncIterator[Harness]:
    async with harness(
        control,
        own_redis.client(),
        transport=httpx.ASGITransport(app=emulator_app),
        REDIS_URL=own_redis.url,
        REQUEST_DEADLINE_SECONDS="4",
    ) as bff:
        yield bff


def lookups(calls: list[dict[str, Any]]) -> int:
    return sum(1 for c in calls if c["path"].endswith("/lookup-customer"))


async def test_redis_down_at_start_up_the_service_starts_serves_through_the_upstream_and_reconnects(
    emulator_app: Any, control: httpx.AsyncClient
) -> None:
    later = OwnRedis()  # nothing listens on its port yet
    async with harness(control, None, transport=httpx.ASGITransport(app=emulator_app), REDIS_URL=later.url) as bff:
        assert (await bff.client.get("/livez")).status_code == 200
        ready = await bff.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] == "unavailable"
        assert action(await bff.get())["type"] == "provide_email"
        assert action(await bff.post("", {"email": EMAIL}))["type"] == "verify_email_code"
        assert action(await bff.get())["type"] == "verify_email_code"  # found again through the upstream
        later.start()
        try:
            await asyncio.sleep(1.2)  # past the Redis breaker's cool-down
            assert action(await bff.get())["type"] == "verify_email_code"
            assert (await bff.client.get("/readyz")).json()["redis"] == "ok"
            assert later.client().keys("bff:*")  # it reconnected by itself and cached the state again
        finally:
            assert later.process is not None
            stop(later.process)
    assert len(await bff.customers()) == 1


async def test_redis_killed_between_the_upstream_create_and_the_cache_write_loses_nothing(
    bff_on_own_redis: Harness, own_redis: OwnRedis
) -> None:
    bff = bff_on_own_redis
    await bff.fault({"path": "/yativo-card/customers/onboard", "latencyMs": 300, "after": True, "times": 1})
    started = asyncio.ensure_future(bff.post("", {"email": EMAIL}))
    await asyncio.sleep(0.1)
    own_redis.kill()
    response = await started
    assert response.status_code == 200 and action(response)["type"] == "verify_email_code"
    own_redis.start()  # back, and empty
    await asyncio.sleep(1.2)
    response = await bff.get()
    assert action(response)["type"] == "verify_email_code"
    assert len(await bff.customers()) == 1
    code = await bff.last_code(EMAIL, "email")
    response = await bff.post("/email-verification", {"code": code})
    assert action(response)["type"] == "complete_kyc"


@pytest.mark.parametrize("how", ["SIGSTOP", "CLIENT PAUSE"])
async def test_a_stalled_redis_costs_bounded_time_and_the_answers_stay_right(
    bff_on_own_redis: Harness, own_redis: OwnRedis, how: str
) -> None:
    bff = bff_on_own_redis
    await drive(bff, "verify_email_code")
    if how == "SIGSTOP":
        own_redis.freeze()
    else:
        own_redis.client().execute_command("CLIENT", "PAUSE", "3000", "ALL")
    try:
        timings = []
        for _ in range(4):
            started = time.monotonic()
            response = await bff.get()
            timings.append(time.monotonic() - started)
            assert response.status_code == 200
            assert action(response)["type"] == "verify_email_code"  # through the upstream, by lookup
        # The first requests pay Redis socket timeouts until its breaker opens; then Redis is skipped.
        assert max(timings) < 4.0
        assert timings[-1] < 0.5
    finally:
        if how == "SIGSTOP":
            own_redis.thaw()
    await asyncio.sleep(3.2 if how == "CLIENT PAUSE" else 1.2)
    response = await bff.post("/email-verification", {"code": await bff.last_code(EMAIL, "email")})
    assert action(response)["type"] == "complete_kyc"


async def test_a_flushed_redis_between_steps_only_costs_a_lookup(
    bff_on_own_redis: Harness, own_redis: OwnRedis
) -> None:
    bff = bff_on_own_redis
    await drive(bff, "answer_source_of_funds")
    own_redis.client().flushall()
    before = lookups(await bff.calls())
    response = await bff.get()
    assert action(response)["type"] == "answer_source_of_funds"
    assert lookups(await bff.calls()) == before + 1
    assert action(await drive(bff, "done"))["type"] == "done"


async def test_a_restarted_redis_is_reconnected_to_without_a_restart_of_the_service(
    bff_on_own_redis: Harness, own_redis: OwnRedis
) -> None:
    bff = bff_on_own_redis
    await drive(bff, "verify_email_code")
    own_redis.kill()
    own_redis.start()
    response = await bff.get()  # the pooled connection is dead: one immediate retry on a new one
    assert response.status_code == 200 and action(response)["type"] == "verify_email_code"
    await asyncio.sleep(1.2)
    await bff.get()
    assert own_redis.client().keys("bff:*")
