"""A socket-level misbehaving upstream on loopback: faults no well-behaved HTTP server can be asked to commit.

It answers the token endpoint properly and `lookup-customer` with "not found"; a path given a mode instead
stalls before the headers, drips its body, resets the connection mid-body, or closes right after reading
the request (as if it committed and then died). Requests are counted per path.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter

TOKEN = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}).encode()
NOT_FOUND = json.dumps({"success": False, "error": "CUSTOMER_NOT_FOUND", "message": "not found"}).encode()
ONBOARDED = json.dumps(
    {
        "data": {
            "yativo_card_id": "yc_faulty",
            "flow_status": "otp_requested",
            "next_step": "verify_otp",
            "otp_expires_in_seconds": 600,
        }
    }
).encode()


class FaultyUpstream:
    def __init__(self) -> None:
        self.modes: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.order: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    async def __aenter__(self) -> FaultyUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                path = target.split("?", 1)[0].removeprefix("/api/v1")
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                self.requests[path] += 1
                self.order.append(f"{method} {path}")
                if not await self._answer(path, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> bool:
        """Write the answer for `path`; False when the connection must end here."""
        mode = self.modes.get(path, "ok")
        if path == "/auth/token":
            body, status = TOKEN, 200
        elif mode == "ok" and path.endswith("/onboard"):
            body, status = ONBOARDED, 200
        else:
            body, status = NOT_FOUND, 404
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        if mode == "ok" or path == "/auth/token":
            writer.write(head + body)
            await writer.drain()
            return True
        if mode == "stall":
            await asyncio.sleep(3600)
        if mode == "drip":
            writer.write(head)
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)
            return True
        if mode == "reset":
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            sock = writer.get_extra_info("socket")
            # SO_LINGER 0: close with a TCP reset instead of an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "close":
            return False
        raise AssertionError(f"unknown mode {mode}")
