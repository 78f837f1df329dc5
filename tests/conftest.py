"""Shared fixtures: the emulator in-process and on a real loopback socket, and a client wired to each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from service.emulator import EmulatorConfig, create_emulator_app
from service.yativo import YativoClient

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


def start_module(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m service ...` as a real process and wait until its port accepts connections."""
    process = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_listening(port, process)
    except Exception:
        process.kill()
        _, err = process.communicate(timeout=5)
        raise RuntimeError(err.decode(errors="replace")) from None
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
