"""The emulator's fault injection, in-process and on a real loopback socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.emulator import EmulatorConfig, create_emulator_app

ROOT = Path(__file__).resolve().parent.parent
ONBOARD = "/api/v1/yativo-card/customers/onboard"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/auth/token", json={"api_key": "yativo_k", "api_secret": "s"})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def add_fault(client: httpx.AsyncClient, **spec: Any) -> str:
    response = await client.post("/_emulator/faults", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def customers(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await client.get("/_emulator/customers")).json()["customers"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as http:
        http.headers.update(await bearer(http))
        yield http


@pytest.fixture
def served() -> Iterator[str]:
    """The emulator on a loopback port, served by uvicorn in a background thread."""
    port = free_port()
    app = create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))
    # log_config=None: uvicorn logs through the test's logging set-up instead of replacing it.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
async def remote(served: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served) as http:
        http.headers.update(await bearer(http))
        yield http


# --- in-process -----------------------------------------------------------------------------------


async def test_latency_delays_the_answer_and_the_request_is_then_processed(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/onboard", latencyMs=200)

    started = time.monotonic()
    response = await client.post(ONBOARD, json={"email": "slow@example.com"})

    assert time.monotonic() - started >= 0.2
    assert response.status_code == 201
    assert len(await customers(client)) == 1


async def test_an_injected_status_with_an_html_body_is_sent_as_is_instead_of_processing(
    client: httpx.AsyncClient,
) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    await add_fault(client, path="/yativo-card/customers/onboard", status=500, body=page, contentType="text/html")

    response = await client.post(ONBOARD, json={"email": "cu@example.com"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html"
    assert response.text == page
    assert await customers(client) == []


async def test_an_injected_json_body_and_headers_are_sent(client: httpx.AsyncClient) -> None:
    body = {"error": "rate_limit_exceeded", "message": "Too many requests", "retry_after": 7}
    await add_fault(client, path="/yativo-card/*", status=429, body=body, headers={"Retry-After": "7"})

    response = await client.post(ONBOARD, json={"email": "cu@example.com"})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


async def test_a_fault_with_times_applies_that_often_and_then_goes_away(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/onboard", status=503, times=2)

    statuses = [(await client.post(ONBOARD, json={"email": "cu@example.com"})).status_code for _ in range(3)]

    assert statuses == [503, 503, 201]
    assert (await client.get("/_emulator/faults")).json() == {"faults": []}


async def test_a_fault_only_hits_its_method_and_path_glob(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/*/kyc-status", method="GET", status=500)

    onboarded = await client.post(ONBOARD, json={"email": "cu@example.com"})
    customer_id = onboarded.json()["data"]["yativo_card_id"]
    status = await client.get(f"/api/v1/yativo-card/customers/{customer_id}/kyc-status")
    link = await client.get(f"/api/v1/yativo-card/customers/{customer_id}/kyc-link")

    assert onboarded.status_code == 201
    assert status.status_code == 500
    assert link.status_code == 409


async def test_faults_never_touch_the_control_plane(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="*", status=500)

    assert (await client.get("/_emulator/outbox")).status_code == 200
    assert (await client.post(ONBOARD, json={"email": "cu@example.com"})).status_code == 500


async def test_an_after_fault_commits_the_request_and_then_replaces_the_answer(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/onboard", status=500, body="oops", after=True)

    response = await client.post(ONBOARD, json={"email": "cu@example.com"})

    assert (response.status_code, response.text) == (500, "oops")
    assert [customer["email"] for customer in await customers(client)] == ["cu@example.com"]
    assert len((await client.get("/_emulator/outbox")).json()["messages"]) == 1


async def test_an_after_drop_commits_the_onboard_then_drops_the_connection(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/onboard", drop=True, after=True, times=1)

    with pytest.raises(ConnectionResetError):
        await client.post(ONBOARD, json={"email": "cu@example.com"}, headers={"Idempotency-Key": "k1"})
    retried = await client.post(ONBOARD, json={"email": "cu@example.com"})

    assert len(await customers(client)) == 1
    assert retried.status_code == 409
    assert retried.json()["error_code"] == "CUSTOMER_CARD_ALREADY_ACTIVE"
    first_call = (await client.get("/_emulator/calls", params={"path": "/yativo-card/*"})).json()["calls"][0]
    assert (first_call["dropped"], first_call["status"], first_call["idempotencyKey"]) == (True, None, "k1")


async def test_a_drop_before_processing_commits_nothing(client: httpx.AsyncClient) -> None:
    await add_fault(client, path="/yativo-card/customers/onboard", drop=True)

    with pytest.raises(ConnectionResetError):
        await client.post(ONBOARD, json={"email": "cu@example.com"})

    assert await customers(client) == []


async def test_faults_can_be_listed_and_removed_one_by_one_or_all_at_once(client: httpx.AsyncClient) -> None:
    first = await add_fault(client, path="/a", status=500)
    await add_fault(client, path="/b", latencyMs=5, times=3)

    listed = (await client.get("/_emulator/faults")).json()["faults"]
    removed = await client.delete(f"/_emulator/faults/{first}")
    missing = await client.delete(f"/_emulator/faults/{first}")
    left = (await client.get("/_emulator/faults")).json()["faults"]
    cleared = await client.delete("/_emulator/faults")

    assert [(fault["path"], fault["remaining"]) for fault in listed] == [("/a", None), ("/b", 3)]
    assert (removed.status_code, missing.status_code) == (204, 404)
    assert [fault["path"] for fault in left] == ["/b"]
    assert cleared.status_code == 204
    assert (await client.get("/_emulator/faults")).json() == {"faults": []}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"path": "/x", "drop": True, "status": 500},
        {"path": "/x", "status": 42},
        {"path": "/x", "times": 0},
        {"path": "/x", "latency": 5},
    ],
)
async def test_malformed_fault_specs_are_refused(client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    response = await client.post("/_emulator/faults", json=spec)

    assert response.status_code == 400
    assert response.json()["error"] == "VALIDATION_ERROR"


# --- real socket ----------------------------------------------------------------------------------


async def test_a_dropped_connection_reaches_a_real_client_as_a_transport_error_after_the_commit(
    remote: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await add_fault(remote, path="/yativo-card/customers/onboard", drop=True, after=True, times=1)

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await remote.post(ONBOARD, json={"email": "cu@example.com"})
    retried = await remote.post(ONBOARD, json={"email": "cu@example.com"})

    assert len(await customers(remote)) == 1
    assert retried.status_code == 409
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_client_that_times_out_during_latency_leaves_nothing_committed(remote: httpx.AsyncClient) -> None:
    await add_fault(remote, path="/yativo-card/customers/onboard", latencyMs=400, times=1)

    with pytest.raises(httpx.ReadTimeout):
        await remote.post(ONBOARD, json={"email": "cu@example.com"}, timeout=0.1)
    await asyncio.sleep(0.5)

    assert await customers(remote) == []


async def test_latency_after_the_commit_times_the_client_out_with_the_customer_created(
    remote: httpx.AsyncClient,
) -> None:
    await add_fault(remote, path="/yativo-card/customers/onboard", latencyMs=1000, after=True, times=1)

    with pytest.raises(httpx.ReadTimeout):
        await remote.post(ONBOARD, json={"email": "cu@example.com"}, timeout=0.2)

    assert len(await customers(remote)) == 1


async def test_a_dripping_answer_arrives_slowly_but_whole(remote: httpx.AsyncClient) -> None:
    await add_fault(
        remote, path="/yativo-card/customers/onboard", status=200, body={"ok": 1}, dripIntervalMs=30, times=1
    )

    started = time.monotonic()
    response = await remote.post(ONBOARD, json={"email": "cu@example.com"}, timeout=0.5)

    assert response.json() == {"ok": 1}
    assert time.monotonic() - started >= 0.18


def test_run_emulator_serves_the_upstream_and_control_plane_from_its_own_process() -> None:
    port = free_port()
    code = (
        "from service.emulator import EmulatorConfig, run_emulator; "
        f"run_emulator('127.0.0.1', {port}, EmulatorConfig())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                httpx.get(f"{base}/_emulator/outbox", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the emulator process did not start"
                time.sleep(0.05)
        with httpx.Client(base_url=base) as http:
            token = http.post("/api/v1/auth/token", json={"api_key": "k", "api_secret": "s"}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            onboarded = http.post(ONBOARD, json={"email": "cu@example.com"}, headers=headers)
            messages = http.get("/_emulator/outbox").json()["messages"]

        assert onboarded.status_code == 201
        assert [(message["to"], message["kind"]) for message in messages] == [("cu@example.com", "email")]
    finally:
        process.terminate()
        process.communicate(timeout=10)
