"""`python -m service dev`: a newcomer's stack, walked end to end over real sockets by the README's own text."""

from __future__ import annotations

import json
import os
import re
import socket
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
    env.pop("LOG_FORMAT", None)  # the documented default: console on a terminal, JSON off one (a pipe here)
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


README_WALK = re.compile(r"^## Walk the flow locally$.*?^```sh\n(.*?)^```$", re.M | re.S)
# The `nextAction.type` a walk line's comment promises: the first word after its `#`.
PROMISE = re.compile(r"\s#\s+([a-z_]+)")


def readme_walk() -> str:
    match = README_WALK.search((ROOT / "README.md").read_text())
    assert match, "README.md has no shell block under 'Walk the flow locally'"
    return match.group(1)


def promised_types(walk: str) -> list[str]:
    """One per call of the walk's `bff` helper, from the comment on its line."""
    calls = [line for line in walk.splitlines() if re.search(r"(^|[;)]\s*)bff\s", line)]
    promised = [PROMISE.search(line) for line in calls]
    assert all(promised), f"a call without its expected nextAction.type: {calls}"
    return [m.group(1) for m in promised if m]


def test_the_readme_walk_runs_as_written_and_answers_what_its_comments_say(dev: tuple[str, str, str]) -> None:
    service, emulator, _ = dev
    walk = readme_walk()
    env = {**os.environ, "BFF": service, "EMU": emulator}
    env.pop("AUTH_JWT_SECRET", None)  # the walk mints its tokens with the dev stack's secret, as `make run` signs
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walk], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    expected = promised_types(walk)
    assert len(expected) >= 9
    assert [a["nextAction"]["type"] for a in answers] == expected
    assert expected[-1] == "done"
    assert answers[-1]["card"]["status"] == "active" and len(answers[-1]["card"]["lastFour"]) == 4


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


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_an_emulator_on_a_busy_port_says_so_and_how_to_choose_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        emulator = run_module("emulator", "--port", str(port))
        dev = run_module("dev", "--port", str(free_port()), "--emulator-port", str(port))
    assert emulator.returncode == 2 and dev.returncode == 2
    assert f"the emulator cannot listen on 127.0.0.1:{port}: the port is already in use" in emulator.stderr
    assert "choose another with --port" in emulator.stderr
    assert "choose another with --emulator-port" in dev.stderr
    assert "Traceback" not in emulator.stderr + dev.stderr


def test_a_dev_token_names_the_user_and_is_accepted_by_the_dev_stack(dev: tuple[str, str, str]) -> None:
    import jwt

    service, _, _ = dev
    env = {k: v for k, v in os.environ.items() if k != "AUTH_JWT_SECRET"}
    token = run_module("dev-token", "someone-else", env=env).stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "someone-else"
    response = httpx.get(f"{service}/v1/card-onboarding", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200 and response.json()["nextAction"]["type"] == "provide_email"


def test_the_dev_stack_logs_json_off_a_terminal_as_documented(redis_url: str, redis_admin: object) -> None:
    process, service, _, token, _ = start_dev(redis_url)
    try:
        response = httpx.get(f"{service}/v1/card-onboarding", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200
    finally:
        stop(process)
    assert process.stdout is not None
    lines = [line for line in process.stdout.read().decode().splitlines() if line.strip()]
    requests = [json.loads(line) for line in lines if line.startswith("{") and '"event":"request"' in line]
    assert [(r["route"], r["status"]) for r in requests] == [("/v1/card-onboarding", 200)]


def test_the_dev_stack_keeps_its_state_in_a_database_of_its_own_emptied_at_start(
    redis_url: str, redis_admin: object
) -> None:
    import redis

    server = redis_url.rsplit("/", 1)[0]
    theirs, ours = redis.Redis.from_url(f"{server}/0"), redis.Redis.from_url(f"{server}/15")
    theirs.set("someone:else", b"keep me")
    ours.set("bff:{u:left}:snap", b"from an earlier run")
    process, service, _, token, _ = start_dev(redis_url)
    try:
        assert ours.get("bff:{u:left}:snap") is None  # the emulator starts empty: so does our state
        started = httpx.post(
            f"{service}/v1/card-onboarding",
            json={"email": "dev.db@example.com"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert started.json()["nextAction"]["type"] == "verify_email_code"
        assert ours.keys("bff:*") != []
        assert theirs.keys("bff:*") == []
        assert theirs.get("someone:else") == b"keep me"
    finally:
        stop(process)
        ours.flushdb()
        theirs.close()
        ours.close()
