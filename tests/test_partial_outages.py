"""Partial upstream outages against a real `python -m service serve` process: only the failing operation's
circuit opens, everything else keeps working, and the circuit closes by itself once the operation works again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Harness, free_port, serve_env, start_module, stop

ONBOARD = "/yativo-card/customers/onboard"


@pytest.fixture
async def served(emulator_server: str, redis_url: str, redis_admin: Any, remote_control: Any) -> AsyncIterator[Harness]:
    port = free_port()
    process = start_module(
        ["serve", "--host", "127.0.0.1", "--port", str(port)], port, serve_env(emulator_server, redis_url)
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield Harness(client, remote_control, FakeClock(), redis_admin)
    finally:
        stop(process)


async def open_circuits(bff: Harness) -> list[str]:
    ready = await bff.client.get("/readyz")
    assert ready.status_code == 200
    return ready.json()["openCircuits"]  # type: ignore[no-any-return]


async def upstream_calls(bff: Harness, suffix: str) -> int:
    return sum(1 for c in await bff.calls() if c["path"].endswith(suffix))


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "upstream_unavailable"
    assert response.json()["nextAction"]["type"] == "retry_later"
    assert int(response.headers["Retry-After"]) >= 1


async def test_an_onboard_outage_opens_the_onboard_circuit_alone_and_it_closes_by_itself_after_recovery(
    served: Harness,
) -> None:
    bff = served
    # A user who started before the outage, to take other steps during it.
    started = await bff.post("", {"email": "steady@example.com"}, "steady")
    assert started.status_code == 200
    await bff.fault({"path": ONBOARD, "status": 503, "body": "<html>down</html>"})

    before = await upstream_calls(bff, ONBOARD)
    for n in range(10):
        assert_refused(await bff.post("", {"email": f"new{n}@example.com"}, f"new-{n}"))
        if "onboard" in await open_circuits(bff):
            break
    assert await open_circuits(bff) == ["onboard"]
    assert await upstream_calls(bff, ONBOARD) - before <= 10

    # Refused at once: no upstream onboard call is made for these.
    seen = await upstream_calls(bff, ONBOARD)
    for n in range(3):
        assert_refused(await bff.post("", {"email": f"later{n}@example.com"}, f"later-{n}"))
    assert await upstream_calls(bff, ONBOARD) == seen

    # Everything else still works: a lookup for a new user, and another user's next step.
    fresh = await bff.get("fresh")
    assert fresh.status_code == 200 and fresh.json()["nextAction"]["type"] == "provide_email"
    code = await bff.last_code("steady@example.com", "email")
    verified = await bff.post("/email-verification", {"code": code}, "steady")
    assert verified.status_code == 200, verified.text
    assert await open_circuits(bff) == ["onboard"]

    # Recovery: the next start after the cool-down is the probe, and it closes the circuit.
    (await bff.control.delete("/_emulator/faults")).raise_for_status()
    for _ in range(80):  # at most 40 s: past the longest cool-down (30 s)
        response = await bff.post("", {"email": "back@example.com"}, "back")
        if response.status_code == 200:
            break
        assert_refused(response)
        await asyncio.sleep(0.5)
    assert response.status_code == 200 and response.json()["nextAction"]["type"] == "verify_email_code"
    assert await open_circuits(bff) == []


async def test_a_lookup_outage_opens_the_lookup_circuit_and_never_the_onboard_one(served: Harness) -> None:
    bff = served
    # Users seen before the outage have a (still empty) snapshot: their start needs no lookup.
    for n in range(3):
        assert (await bff.get(f"known-{n}")).status_code == 200
    await bff.fault({"path": "/card-issuer/lookup-customer", "status": 503, "body": "down"})
    for n in range(5):
        assert_refused(await bff.get(f"stranger-{n}"))
    assert await open_circuits(bff) == ["lookup"]
    for n in range(3):
        response = await bff.post("", {"email": f"known{n}@example.com"}, f"known-{n}")
        assert response.status_code == 200 and response.json()["nextAction"]["type"] == "verify_email_code"
    assert await open_circuits(bff) == ["lookup"]


async def test_a_kyc_status_outage_refuses_no_start(served: Harness) -> None:
    bff = served
    waiting = [f"waiting-{n}" for n in range(3)]
    for sub in waiting:
        assert (await bff.post("", {"email": f"{sub}@example.com"}, sub)).status_code == 200
        code = await bff.last_code(f"{sub}@example.com", "email")
        verified = await bff.post("/email-verification", {"code": code}, sub)
        assert verified.json()["nextAction"]["type"] == "complete_kyc", verified.text
    await bff.fault({"path": "/yativo-card/customers/*/kyc-status", "status": 503, "body": "down"})
    # Users in review poll: each read asks for the KYC status, which fails, until its circuit opens.
    for sub in waiting:
        await bff.get(sub)
    assert await open_circuits(bff) == ["kyc_status"]
    starts = [await bff.post("", {"email": f"starter{n}@example.com"}, f"starter-{n}") for n in range(10)]
    assert [r.status_code for r in starts] == [200] * 10
    assert {r.json()["nextAction"]["type"] for r in starts} == {"verify_email_code"}
