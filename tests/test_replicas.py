"""Three real `python -m service serve` processes on one Redis and one emulator, hit with concurrent duplicates."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.http.auth import issue_dev_token
from tests.conftest import JWT_SECRET, free_port, serve_env, start_module, stop

USERS = 5
DUPLICATES = 30
PHONE = "+14155552671"
RETRYABLE = {503: "upstream_unavailable", 504: "upstream_timeout"}


@pytest.fixture
def three_replicas(emulator_server: str, redis_url: str, redis_admin: Any) -> Iterator[list[str]]:
    env = serve_env(emulator_server, redis_url, LOG_LEVEL="warning")
    ports = [free_port() for _ in range(3)]
    processes = [start_module(["serve", "--host", "127.0.0.1", "--port", str(p)], p, env) for p in ports]
    try:
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for process in processes:
            stop(process)


def same_success_or_retryable(responses: list[httpx.Response], expected: str) -> None:
    for response in responses:
        if response.status_code == 200:
            assert response.json()["nextAction"]["type"] == expected, response.text
        else:
            assert RETRYABLE.get(response.status_code) == response.json()["code"], response.text
            assert response.json()["nextAction"]["type"] == "retry_later"
    assert any(r.status_code == 200 for r in responses)


async def test_concurrent_duplicates_across_three_processes_make_one_customer_one_email_and_one_card(
    three_replicas: list[str], remote_control: httpx.AsyncClient
) -> None:
    control = remote_control
    users = [f"replica-user-{n}" for n in range(USERS)]
    emails = {u: f"{u}@example.com" for u in users}
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    clients = [httpx.AsyncClient(base_url=url, timeout=20, limits=limits) for url in three_replicas]
    spread = itertools.cycle(clients)

    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_dev_token(JWT_SECRET, user)}"}

    async def burst(user: str, path: str, body: Any = None) -> list[httpx.Response]:
        url = "/v1/card-onboarding" + path
        sends = [next(spread).post(url, json=body, headers=auth(user)) for _ in range(DUPLICATES)]
        return list(await asyncio.gather(*sends))

    try:
        # Slow the creates down a little so the duplicates really overlap on every replica.
        for path in ("/yativo-card/customers/onboard", "/yativo-card/customers/*/cards/virtual"):
            (await control.post("/_emulator/faults", json={"path": path, "latencyMs": 150})).raise_for_status()

        starts = await asyncio.gather(*(burst(u, "", {"email": emails[u]}) for u in users))
        for responses in starts:
            same_success_or_retryable(responses, "verify_email_code")

        outbox = (await control.get("/_emulator/outbox")).json()["messages"]
        assert Counter(m["to"] for m in outbox if m["kind"] == "email") == {emails[u]: 1 for u in users}
        customers = (await control.get("/_emulator/customers")).json()["customers"]
        assert len(customers) == USERS

        # Walk each user to the card (one replica per step, round robin), then fire duplicate card requests.
        for user in users:
            email = emails[user]
            (await control.post(f"/_emulator/customers/{email}/kyc", json={"status": "approved"})).raise_for_status()
            code = [m["code"] for m in outbox if m["to"] == email][-1]
            state = (
                await next(spread).post(
                    "/v1/card-onboarding/email-verification", json={"code": code}, headers=auth(user)
                )
            ).json()
            assert state["nextAction"]["type"] == "answer_source_of_funds", state
            answers = [{"question": q["id"], "answer": q["options"][0]} for q in state["nextAction"]["questions"]]
            state = (
                await next(spread).post(
                    "/v1/card-onboarding/source-of-funds", json={"answers": answers}, headers=auth(user)
                )
            ).json()
            assert state["nextAction"]["type"] == "provide_phone", state
            state = (
                await next(spread).post("/v1/card-onboarding/phone", json={"phoneNumber": PHONE}, headers=auth(user))
            ).json()
            sms = [
                m["code"] for m in (await control.get("/_emulator/outbox")).json()["messages"] if m["kind"] == "sms"
            ][-1]
            state = (
                await next(spread).post(
                    "/v1/card-onboarding/phone-verification", json={"code": sms}, headers=auth(user)
                )
            ).json()
            assert state["nextAction"]["type"] == "create_card", state

        cards = await asyncio.gather(*(burst(u, "/card") for u in users))
        for responses in cards:
            same_success_or_retryable(responses, "done")

        calls = (await control.get("/_emulator/calls")).json()["calls"]
        posts = Counter(c["path"].rsplit("/", 1)[-1] for c in calls if c["method"] == "POST")
        assert posts["onboard"] == USERS
        assert posts["virtual"] == USERS
        customers = (await control.get("/_emulator/customers")).json()["customers"]
        assert sorted(len(c["cards"]) for c in customers) == [1] * USERS
    finally:
        for client in clients:
            await client.aclose()
