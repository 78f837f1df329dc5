"""The production JSON request log, read from a real server process's stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import JWT_SECRET, ROOT, free_port, stop, wait_until_listening


def test_every_request_writes_one_json_line_and_keeps_the_connection_open() -> None:
    port = free_port()
    env = {
        **os.environ,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": "memory://",
        "YATIVO_BASE_URL": f"http://127.0.0.1:{free_port()}/api/v1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_listening(port, process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            # One keep-alive connection: a failing log line used to break it after the first answer.
            answers = [http.get("/livez", headers={"X-Request-ID": f"req-{i}"}) for i in range(3)]
    finally:
        stop(process)
    out, err = process.communicate()
    assert [a.status_code for a in answers] == [200, 200, 200]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["request_id"], r["route"], r["status"], r["level"]) for r in requests] == [
        (f"req-{i}", "/livez", 200, "info") for i in range(3)
    ]
    assert all(isinstance(r["duration_ms"], float) and r["timestamp"].endswith("Z") for r in requests)
    assert b"Traceback" not in err
