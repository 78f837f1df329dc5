"""`python -m service dev`: a newcomer's stack, walked end to end over real sockets as the README shows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from service import demo
from tests.conftest import ROOT, free_port, stop, wait_until_listening


def start_dev(redis_url: str) -> tuple[subprocess.Popen[bytes], str, str, str, list[str]]:
    port, emulator_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("AUTH_JWKS_URL", None)
    env.pop("AUTH_JWT_SECRET", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "dev", "--port", str(port), "--emulator-port", str(emulator_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    token = ""
    banner: list[str] = []
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode().strip()
        banner.append(line)
        if line.startswith("token:"):
            token = line.split()[1]
        if line == "Try:":
            break
    wait_until_listening(port, process)
    wait_until_listening(emulator_port, process)
    return process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}", token, banner


@pytest.fixture
def dev(redis_url: str, redis_admin: object) -> Iterator[tuple[str, str, str]]:
    process, service, emulator, token, _ = start_dev(redis_url)
    try:
        yield service, emulator, token
    finally:
        stop(process)


def test_the_dev_stack_onboards_a_user_to_a_card_with_plain_http(dev: tuple[str, str, str]) -> None:
    service, emulator, token = dev
    assert token.count(".") == 2
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=service, headers=auth, timeout=10) as api, httpx.Client(base_url=emulator) as emu:

        def code(to: str) -> str:
            return str(emu.get("/_emulator/outbox", params={"to": to}).json()["messages"][-1]["code"])

        state = api.get("/v1/card-onboarding").json()
        assert state["nextAction"]["type"] == "provide_email"
        state = api.post("/v1/card-onboarding", json={"email": "newcomer@example.com"}).json()
        state = api.post(state["nextAction"]["endpoint"]["path"], json={"code": code("newcomer@example.com")}).json()
        assert state["nextAction"]["type"] == "complete_kyc"
        # The emulator approves KYC by itself a few seconds after the link was fetched; a frontend polls.
        emu.post("/_emulator/customers/newcomer@example.com/kyc", json={"status": "approved"}).raise_for_status()
        state = api.get("/v1/card-onboarding").json()
        assert state["nextAction"]["type"] == "answer_source_of_funds", state
        answers = [{"question": q["id"], "answer": q["options"][0]} for q in state["nextAction"]["questions"]]
        state = api.post("/v1/card-onboarding/source-of-funds", json={"answers": answers}).json()
        state = api.post("/v1/card-onboarding/phone", json={"phoneNumber": "+14155550100"}).json()
        state = api.post("/v1/card-onboarding/phone-verification", json={"code": code("+14155550100")}).json()
        assert state["nextAction"]["type"] == "create_card"
        state = api.post("/v1/card-onboarding/card").json()
        assert state["nextAction"]["type"] == "done"
        assert state["card"]["status"] == "active" and len(state["card"]["lastFour"]) == 4
        assert api.get("/schema/openapi.json").status_code == 200


def test_the_dev_stack_falls_back_to_memory_when_redis_is_unreachable() -> None:
    process, service, _, token, _ = start_dev(f"redis://127.0.0.1:{free_port()}/0")
    try:
        response = httpx.get(f"{service}/v1/card-onboarding", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200
        assert response.json()["nextAction"]["type"] == "provide_email"
    finally:
        stop(process)
        assert process.stderr is not None
        err = process.stderr.read().decode()
    assert "not reachable; using an in-process store (memory://)" in err


def test_the_dev_stack_says_where_the_web_demo_is_or_how_to_build_it(redis_url: str, redis_admin: object) -> None:
    process, service, _, _, banner = start_dev(redis_url)
    try:
        (line,) = [line for line in banner if line.startswith("web demo:")]
        if demo.is_built():
            assert line.split()[-1] == f"{service}/demo/"
            assert httpx.get(f"{service}/demo/", timeout=10).status_code == 200
        else:
            assert "make web" in line
            assert httpx.get(f"{service}/demo/", timeout=10).status_code == 404
    finally:
        stop(process)
