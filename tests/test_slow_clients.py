"""Slow and vanishing clients against a real server process: late headers and bodies are cut off, idle connections
closed, other clients answered meanwhile, and a client gone mid-body is no server error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.http.auth import issue_dev_token
from tests import leakguard
from tests.conftest import JWT_SECRET, free_port, serve_env, start_module, stop

READ_TIMEOUT = 3.0
# The deadline, the second the app is given to answer a late body, and room for a busy machine.
CUT_OFF_WITHIN = READ_TIMEOUT + 4
IDLE_CLOSED_WITHIN = 5 + 4  # the server's 5 s keep-alive timeout and the same room
START = "/v1/card-onboarding"


@dataclass
class Server:
    port: int
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def server(emulator_server: str, redis_url: str) -> Iterator[Server]:
    port = free_port()
    before = set(leakguard._SUBPROCESS_LOGS.glob("*.log"))
    env = serve_env(emulator_server, redis_url, REQUEST_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT), LOG_FORMAT="json")
    process = start_module(["serve", "--host", "127.0.0.1", "--port", str(port)], port, env)
    [log] = set(leakguard._SUBPROCESS_LOGS.glob("*.log")) - before
    try:
        yield Server(port, log)
    finally:
        stop(process)


def bearer(sub: str) -> str:
    token = issue_dev_token(JWT_SECRET, sub)
    leakguard.register(token)
    return f"Bearer {token}"


def start_head(sub: str, length: int, request_id: str = "") -> bytes:
    extra = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    return (
        f"POST {START} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {bearer(sub)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


@dataclass
class Trickled:
    answer: bytes  # everything the server sent
    cut_off: bool  # the server closed the connection before the client gave up


async def trickle(port: int, head: bytes, tail: bytes, *, connected: asyncio.Event | None = None) -> Trickled:
    """Send `head` at once, then `tail` one byte a second, until the server closes the connection or CUT_OFF_WITHIN."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def read_to_the_end() -> bytes:
        answer = b""
        try:
            while chunk := await reader.read(65536):
                answer += chunk
        except ConnectionResetError:  # closed while our bytes were still arriving
            pass
        return answer

    reading = asyncio.create_task(read_to_the_end())
    try:
        async with asyncio.timeout(CUT_OFF_WITHIN):
            writer.write(head)
            if connected is not None:
                connected.set()
            for byte in tail:
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.wait({reading}, timeout=1.0)
                if reading.done():
                    break
            return Trickled(await reading, cut_off=True)
    except TimeoutError:
        return Trickled(b"", cut_off=False)
    finally:
        reading.cancel()
        writer.close()


def problem_of(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


# Never completes: the blank line that ends the headers is not in it.
SLOW_HEADERS = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64


async def test_headers_sent_a_byte_a_second_are_answered_408_and_the_connection_closed(server: Server) -> None:
    slow = await trickle(server.port, b"", SLOW_HEADERS)
    assert slow.cut_off
    status, headers, body = problem_of(slow.answer)
    assert (status, headers["content-type"], headers["connection"]) == (408, "application/problem+json", "close")
    assert body["code"] == "request_timeout" and body["retryable"] is True
    assert body["nextAction"]["type"] == "retry_later"
    assert headers["x-request-id"] == body["requestId"]
    timed_out = [line for line in server.lines() if line.get("request_id") == body["requestId"]]
    assert [(line["status"], line["outcome"], line["level"]) for line in timed_out] == [
        (408, "request_timeout", "info")
    ]


async def test_a_body_sent_a_byte_a_second_is_answered_408_and_the_connection_closed(server: Server) -> None:
    slow = await trickle(server.port, start_head("slow-body", 64), b'{"email": "' + b"a" * 53)
    assert slow.cut_off
    status, headers, body = problem_of(slow.answer)
    assert (status, headers["content-type"], headers["connection"]) == (408, "application/problem+json", "close")
    assert body["code"] == "request_timeout"
    assert body["nextAction"] == {
        "type": "retry_later",
        "endpoint": {"method": "POST", "path": START},
        "retryAfterSeconds": int(headers["retry-after"]),
    }


async def test_a_body_still_trickling_after_the_app_answered_is_cut_off_with_its_connection(server: Server) -> None:
    head = (
        f"POST {START} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer not-a-token\r\n"
        "Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
    ).encode()
    slow = await trickle(server.port, head, b"{" + b" " * 63)
    assert slow.cut_off
    assert slow.answer.startswith(b"HTTP/1.1 401 ")  # answered at once, without reading the body


async def test_other_clients_are_answered_while_200_slow_connections_are_open(server: Server) -> None:
    connected = [asyncio.Event() for _ in range(200)]
    slow = [
        asyncio.create_task(
            trickle(server.port, b"", SLOW_HEADERS, connected=ready)
            if i % 2
            else trickle(server.port, start_head(f"slow-{i}", 64), b"{" + b" " * 63, connected=ready)
        )
        for i, ready in enumerate(connected)
    ]
    async with asyncio.timeout(CUT_OFF_WITHIN):
        await asyncio.gather(*(ready.wait() for ready in connected))
    answered = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=CUT_OFF_WITHIN) as client:
        for _ in range(10):
            answered.append((await client.get("/livez")).status_code)
            state = await client.get(START, headers={"Authorization": bearer("patient-user")})
            answered.append(state.status_code)
    # Answered before the slow ones' deadline came: none of them had been cut off yet.
    still_open = sum(not task.done() for task in slow)
    results = await asyncio.gather(*slow)
    assert answered == [200] * 20
    assert still_open == 200
    assert all(result.cut_off for result in results)
    assert {problem_of(result.answer)[0] for result in results} == {408}


async def test_idle_connections_are_closed_after_a_few_seconds_before_and_between_requests(server: Server) -> None:
    async def closed_by_the_server(request: bytes) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request)
            if request:
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
                length = next(
                    int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if b"content-length" in line
                )
                await reader.readexactly(length)
            async with asyncio.timeout(IDLE_CLOSED_WITHIN):
                return await reader.read(1) == b""
        except TimeoutError:
            return False
        finally:
            writer.close()

    kept_alive, never_spoke = await asyncio.gather(
        closed_by_the_server(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), closed_by_the_server(b"")
    )
    assert kept_alive and never_spoke


def five_hundreds(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "card_onboarding_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["status_code"].startswith("5")
    )


async def lines_of(server: Server, request_id: str) -> list[dict[str, Any]]:
    for _ in range(100):  # written once the handler has seen the disconnect
        if found := [line for line in server.lines() if line.get("request_id") == request_id]:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_a_client_gone_mid_body_is_one_info_line_and_no_server_error(server: Server) -> None:
    before = five_hundreds(server.port)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(start_head("vanishing-user", 100, request_id="vanishing-client-1") + b'{"email": ')
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is now waiting for the rest of the body
    writer.close()
    await writer.wait_closed()
    gone = await lines_of(server, "vanishing-client-1")
    assert [(line["event"], line["level"], line["outcome"], line["status"]) for line in gone] == [
        ("request", "info", "client_closed", 499)
    ]
    assert five_hundreds(server.port) == before
    assert not [line for line in server.lines() if line["level"] in ("error", "critical")]
