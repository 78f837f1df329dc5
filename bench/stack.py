"""The processes a benchmark needs: throwaway redis-server, emulator, service variants and H, pinned to cores."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-secret-for-hs256-tokens-0000000000"
# Servers under test get core 0; load generators, Redis and the emulator share core 1.
SERVER_CORE = 0
LOAD_CORE = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> int:
    return len(os.sched_getaffinity(0))


def pinned(argv: list[str], core: int) -> list[str]:
    """Pin to one core with taskset when there are at least two (the pid stays the program's: taskset execs it)."""
    if cores() >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core), *argv]
    return argv


class Proc:
    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        core: int = SERVER_CORE,
        stdout: IO[Any] | int = subprocess.DEVNULL,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.popen = subprocess.Popen(
            pinned(argv, core),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        self._wait_listening()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                err = self.popen.stderr.read().decode(errors="replace") if self.popen.stderr else ""
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout} s")

    def status_kib(self, field: str) -> int:
        """A size line of /proc/PID/status (VmRSS, VmHWM), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_redis() -> Proc:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Proc("redis", argv, port, core=LOAD_CORE)


def start_emulator() -> Proc:
    port = free_port()
    # KYC never approves by itself: the users waiting for review stay there for the whole run.
    argv = python_module("service", "emulator", "--port", str(port), "--kyc-auto-approve-seconds", "-1")
    return Proc("emulator", argv, port, core=LOAD_CORE)


def service_env(redis: Proc, emulator: Proc, **extra: str) -> dict[str, str]:
    return {
        "AUTH_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "YATIVO_BASE_URL": f"{emulator.url}/api/v1",
        "YATIVO_API_KEY": "bench",
        "YATIVO_API_SECRET": "bench",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "TRUSTED_PROXIES": "127.0.0.1/32",
        **extra,
    }


def start_service(
    name: str,
    env: dict[str, str],
    *,
    variant: list[str] | None = None,
    log: IO[Any] | int = subprocess.DEVNULL,
    source: Path = ROOT,
) -> Proc:
    """`python -m service serve` (the production entry point), or bench.variant with a chosen transport; `source`:
    the checkout whose `service` package runs (`python -m` puts the working directory first on the path)."""
    port = free_port()
    if variant is None:
        argv = python_module("service", "serve", "--host", "127.0.0.1", "--port", str(port))
    else:
        argv = python_module("bench.variant", "--port", str(port), *variant)
    return Proc(name, argv, port, env=env, stdout=log, cwd=source)


def export(rev: str) -> Path:
    """The tree of git revision `rev`, unpacked into a temporary directory (to run a baseline beside this one)."""
    target = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start_trivial() -> Proc:
    port = free_port()
    return Proc("H", python_module("bench.trivial", "--port", str(port)), port)


def start_libraries(env: dict[str, str]) -> Proc:
    """H in a process that first loads every library the service loads (the floor of the service's memory)."""
    port = free_port()
    argv = python_module("bench.trivial", "--port", str(port), "--with-libraries")
    return Proc("H with the service's libraries", argv, port, env=env)


def start_floor(redis: Proc, emulator: Proc, redis_key: str, transport: str) -> Proc:
    port = free_port()
    argv = python_module(
        "bench.floors",
        "--port",
        str(port),
        "--redis-url",
        f"redis://127.0.0.1:{redis.port}/0",
        "--redis-key",
        redis_key,
        "--upstream",
        f"{emulator.url}/api/v1",
        "--transport",
        transport,
    )
    return Proc(f"floor-{transport}", argv, port)
