"""Concurrent duplicates: one upstream effect per user intent, on one replica and on two sharing one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.onboarding.user import User
from service.usecases import _idempotency_key
from tests.conftest import FakeClock, Harness, harness
from tests.journey import EMAIL, action, drive


class Replicas:
    """Two apps (two "replicas") on one emulator and one Redis; request i goes to replica i % 2."""

    def __init__(self, a: Harness, b: Harness) -> None:
        self.nodes = (a, b)

    def __getitem__(self, index: int) -> Harness:
        return self.nodes[index % 2]

    async def fan_out(self, count: int, send: Any) -> list[Any]:
        return list(await asyncio.gather(*(send(self[i]) for i in range(count))))


@pytest.fixture
async def replicas(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> AsyncIterator[Replicas]:
    clock = FakeClock()  # one wall clock, as real replicas share one
    transport = httpx.ASGITransport(app=emulator_app)
    async with (
        harness(control, redis_admin, transport=transport, clock=clock, served=True, REDIS_URL=redis_url) as a,
        harness(control, redis_admin, transport=transport, clock=clock, served=True, REDIS_URL=redis_url) as b,
    ):
        yield Replicas(a, b)


def calls_to(calls: list[dict[str, Any]], suffix: str, method: str = "POST") -> list[dict[str, Any]]:
    return [c for c in calls if c["path"].endswith(suffix) and c["method"] == method]


@pytest.fixture
async def served(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> AsyncIterator[Harness]:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(control, redis_admin, transport=transport, served=True, REDIS_URL=redis_url) as h:
        yield h


async def test_thirty_concurrent_starts_on_one_replica_make_one_upstream_call_and_send_one_email(
    served: Harness,
) -> None:
    bff = served
    await bff.fault({"path": "/yativo-card/customers/onboard", "latencyMs": 100, "times": 1})
    answers = await asyncio.gather(*(bff.post("", {"email": EMAIL}) for _ in range(30)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert action(answers[0])["type"] == "verify_email_code"
    assert len(calls_to(await bff.calls(), "/customers/onboard")) == 1
    assert [m["kind"] for m in await bff.outbox()] == ["email"]
    assert 'card_onboarding_single_flight_joins_total{where="local"}' in (await bff.client.get("/metrics")).text


async def test_thirty_concurrent_starts_across_two_replicas_make_one_upstream_call(replicas: Replicas) -> None:
    await replicas[0].fault({"path": "/yativo-card/customers/onboard", "latencyMs": 200, "times": 1})
    answers = await replicas.fan_out(30, lambda node: node.post("", {"email": EMAIL}))
    assert {r.status_code for r in answers} == {200}
    assert {action(r)["type"] for r in answers} == {"verify_email_code"}
    assert len(calls_to(await replicas[0].calls(), "/customers/onboard")) == 1
    assert (
        'card_onboarding_single_flight_joins_total{where="remote"}' in (await replicas[0].client.get("/metrics")).text
    )
    assert len(await replicas[0].customers()) == 1
    assert len(await replicas[0].outbox()) == 1


async def test_concurrent_card_requests_across_two_replicas_issue_one_card(replicas: Replicas) -> None:
    await drive(replicas[0], "create_card")
    await replicas[0].fault({"path": "/yativo-card/customers/*/cards/virtual", "latencyMs": 200, "times": 1})
    answers = await replicas.fan_out(30, lambda node: node.post("/card"))
    assert {r.status_code for r in answers} == {200}
    assert {action(r)["type"] for r in answers} == {"done"}
    assert len(calls_to(await replicas[0].calls(), "/cards/virtual")) == 1
    (customer,) = await replicas[0].customers()
    assert len(customer["cards"]) == 1


async def test_kyc_polling_asks_the_upstream_once_per_interval_however_many_frontends_poll(replicas: Replicas) -> None:
    await drive(replicas[0], "wait_for_kyc")
    before = len(calls_to(await replicas[0].calls(), "/kyc-status", "GET"))
    replicas[0].clock.advance(6)  # the poll interval has passed
    await replicas[0].fault({"path": "/yativo-card/customers/*/kyc-status", "latencyMs": 100, "times": 1})
    answers = await replicas.fan_out(30, lambda node: node.get())
    assert {r.status_code for r in answers} == {200}
    assert {action(r)["type"] for r in answers} == {"wait_for_kyc"}
    assert len(calls_to(await replicas[0].calls(), "/kyc-status", "GET")) == before + 1
    # Within the interval, every read is answered from Redis.
    await replicas.fan_out(20, lambda node: node.get())
    assert len(calls_to(await replicas[0].calls(), "/kyc-status", "GET")) == before + 1


async def test_different_steps_of_one_user_take_turns_and_each_gets_its_own_answer(served: Harness) -> None:
    bff = served
    await bff.fault({"path": "/yativo-card/customers/onboard", "latencyMs": 100, "times": 1})
    started, read = await asyncio.gather(bff.post("", {"email": EMAIL}), bff.get())
    assert started.status_code == 200 and action(started)["type"] == "verify_email_code"
    assert read.status_code == 200 and action(read)["type"] in ("provide_email", "verify_email_code")


async def test_every_mutating_upstream_call_carries_a_deterministic_idempotency_key(replicas: Replicas) -> None:
    await drive(replicas[0], "done")
    mutating = [c for c in await replicas[0].calls() if c["method"] == "POST" and "/yativo-card/" in c["path"]]
    assert len(mutating) == 6  # onboard, verify-otp, source-of-funds, phone request, phone verify, card
    assert all(c["idempotencyKey"] for c in mutating)
    assert len({c["idempotencyKey"] for c in mutating}) == len(mutating)
    # Derived from the user, the step and the attempt only: any replica computes the same key.
    (card_call,) = [c for c in mutating if c["path"].endswith("/cards/virtual")]
    card_id = card_call["path"].split("/")[3]
    assert card_call["idempotencyKey"] == _idempotency_key(User("user-ada"), "card", card_id)
    assert card_call["idempotencyKey"] != _idempotency_key(User("user-bob"), "card", card_id)


async def test_every_key_but_the_durable_card_id_expires(replicas: Replicas) -> None:
    await replicas[0].fault({"path": "/yativo-card/customers/onboard", "latencyMs": 200, "times": 1})
    await replicas.fan_out(10, lambda node: node.post("", {"email": EMAIL}))
    await drive(replicas[0], "done")
    redis = replicas[0].redis
    for key in redis.keys("bff:*"):
        ttl = redis.ttl(key)
        assert ttl > 0 or key.endswith(b":card"), (key, ttl)


async def test_requests_queued_behind_other_steps_of_the_same_user_still_end_at_their_own_deadline(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(
        control, redis_admin, transport=transport, served=True, REDIS_URL=redis_url, REQUEST_DEADLINE_SECONDS="1"
    ) as bff:
        await bff.get()
        await bff.fault({"path": "/yativo-card/customers/onboard", "latencyMs": 3000})
        loop = asyncio.get_running_loop()

        async def timed_start(email: str, delay: float) -> tuple[int, float]:
            await asyncio.sleep(delay)
            started = loop.time()
            response = await bff.post("", {"email": email})  # different emails: different flights, one at a time
            return response.status_code, loop.time() - started

        results = await asyncio.gather(*(timed_start(f"u{n}@example.com", n * 0.1) for n in range(4)))
    assert [status for status, _ in results] == [504] * 4
    # Each ends at its own deadline, waiting in line included (not one deadline per request ahead of it).
    assert max(elapsed for _, elapsed in results) < 1.6, results
