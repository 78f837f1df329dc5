"""SIGTERM: the server stops taking requests, finishes the ones in flight, closes its clients and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from service.http.auth import issue_dev_token
from tests.conftest import JWT_SECRET, ROOT, free_port, serve_env, wait_until_listening


def test_sigterm_finishes_the_request_in_flight_and_then_exits(
    emulator_server: str, remote_control: httpx.Client, redis_url: str, redis_admin: Any
) -> None:
    port = free_port()
    env = serve_env(emulator_server, redis_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_until_listening(port, process)
    with httpx.Client(base_url=emulator_server) as control:
        control.post(
            "/_emulator/faults", json={"path": "/card-issuer/lookup-customer", "latencyMs": 1500}
        ).raise_for_status()
    answer: dict[str, Any] = {}

    def in_flight() -> None:
        token = issue_dev_token(JWT_SECRET, "draining-user")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            response = client.get("/v1/card-onboarding", headers={"Authorization": f"Bearer {token}"})
            answer["status"] = response.status_code
            answer["type"] = response.json()["nextAction"]["type"]

    worker = threading.Thread(target=in_flight)
    worker.start()
    time.sleep(0.5)  # the request is now waiting on the slow upstream
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with socket.socket() as probe:
        refused = probe.connect_ex(("127.0.0.1", port)) != 0
    worker.join(timeout=10)
    out, _ = process.communicate(timeout=15)
    assert answer == {"status": 200, "type": "provide_email"}  # finished, not cut off
    assert refused  # no new connections once draining
    # uvicorn re-raises the SIGTERM once it has shut down cleanly, so the parent sees how it ended.
    assert process.returncode in (0, -signal.SIGTERM), out.decode()
    events = [json.loads(line)["event"] for line in out.decode().splitlines() if line.startswith("{")]
    assert events.index("request") < events.index("stopped")  # drained first, then clients closed
