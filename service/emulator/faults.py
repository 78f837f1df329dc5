"""Fault injection: a raw ASGI layer that delays, replaces, drips or drops matching upstream requests."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
from typing import Annotated, Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.emulator.config import UPSTREAM_PREFIX

# The call recorder reads this scope entry to log which fault hit a request and whether it dropped it.
FAULT_SCOPE_KEY = "emulator.fault"


class FaultSpec(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """What to do to requests whose path (after /api/v1) matches the `path` glob."""

    path: str
    method: str | None = None
    latency_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    # A string is sent as-is (say an HTML error page); anything else is sent as JSON.
    body: Any = msgspec.UNSET
    content_type: str | None = None
    headers: dict[str, str] = {}
    drop: bool = False
    # Process the request (and commit its effects) first, then apply the fault.
    after: bool = False
    # Send the response body one byte at a time, this far apart.
    drip_interval_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    times: Annotated[int, msgspec.Meta(ge=1)] | None = None

    def __post_init__(self) -> None:
        if self.drop and self.status is not None:
            raise ValueError("`drop` and `status` exclude each other")


class Fault(msgspec.Struct, kw_only=True):
    id: str
    spec: FaultSpec
    remaining: int | None


class FaultMark(msgspec.Struct, kw_only=True):
    fault_id: str
    dropped: bool = False


class FaultBook:
    """The active faults, oldest first; the first match wins and uses up one of its `times`."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(id=f"fault_{next(self._ids)}", spec=spec, remaining=spec.times)
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        kept = [fault for fault in self._faults if fault.id != fault_id]
        removed = len(kept) != len(self._faults)
        self._faults = kept
        return removed

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        return [
            {"id": fault.id, "remaining": fault.remaining, **msgspec.to_builtins(fault.spec)} for fault in self._faults
        ]

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            spec = fault.spec
            if spec.method is not None and spec.method.upper() != method.upper():
                continue
            if not fnmatch.fnmatchcase(path, spec.path):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            return fault
        return None


def upstream_path(scope: Scope) -> str | None:
    """The path after /api/v1 for upstream HTTP requests, None for anything else."""
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if path != UPSTREAM_PREFIX and not path.startswith(f"{UPSTREAM_PREFIX}/"):
        return None
    return path[len(UPSTREAM_PREFIX) :] or "/"


class FaultInjector:
    """ASGI middleware applying the first matching fault of a `FaultBook` to upstream requests."""

    def __init__(self, app: ASGIApp, book: FaultBook) -> None:
        self._app = app
        self._book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = upstream_path(scope)
        fault = None if path is None else self._book.take(scope["method"], path)
        if fault is None:
            await self._app(scope, receive, send)
            return
        mark = FaultMark(fault_id=fault.id)
        scope[FAULT_SCOPE_KEY] = mark  # type: ignore[literal-required]
        inbound = _Inbound(receive)
        try:
            await self._apply(fault.spec, mark, scope, inbound, send)
        finally:
            inbound.close()

    async def _apply(self, spec: FaultSpec, mark: FaultMark, scope: Scope, inbound: _Inbound, send: Send) -> None:
        if not await inbound.read_body():
            return
        latency = spec.latency_ms / 1000
        response: _Response | None = None
        if spec.after:
            response = await self._run(scope, inbound)
        # A client that gives up during the latency leaves: a fault before processing then commits nothing.
        if not await inbound.stay(latency):
            return
        if spec.drop:
            mark.dropped = True
            await _drop(send)
            return
        if spec.status is not None:
            response = _fault_response(spec)
        elif response is None:
            if not spec.drip_interval_ms:
                await self._app(scope, inbound.receive, send)
                return
            response = await self._run(scope, inbound)
        await _reply(send, inbound, response, spec.drip_interval_ms / 1000)

    async def _run(self, scope: Scope, inbound: _Inbound) -> _Response:
        captured = _Captured()
        await self._app(scope, inbound.receive, captured.send)
        return captured.response()


class _Response(msgspec.Struct):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Captured:
    """An ASGI `send` that keeps the response instead of sending it."""

    def __init__(self) -> None:
        self._status = 500
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            self._headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self._body += message.get("body", b"")

    def response(self) -> _Response:
        return _Response(self._status, self._headers, bytes(self._body))


class _Inbound:
    """The request body read up front, so the client's disconnect can be watched while a fault waits."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body = b""
        self._delivered = False
        self._gone: asyncio.Future[None] | None = None

    async def read_body(self) -> bool:
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return False
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return True

    async def receive(self) -> Message:
        if not self._delivered:
            self._delivered = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await asyncio.shield(self._disconnect())
        return {"type": "http.disconnect"}

    async def stay(self, seconds: float) -> bool:
        """Wait `seconds`; False (early) when the client disconnects."""
        if seconds <= 0:
            return True
        done, _ = await asyncio.wait({self._disconnect()}, timeout=seconds)
        return not done

    def close(self) -> None:
        if self._gone is None:
            return
        if self._gone.done():
            if not self._gone.cancelled():
                self._gone.exception()
        else:
            self._gone.cancel()

    def _disconnect(self) -> asyncio.Future[None]:
        # One task owns the real `receive` from here on: two concurrent receive() calls are not allowed.
        if self._gone is None:
            self._gone = asyncio.ensure_future(self._wait_for_disconnect())
        return self._gone

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass


def _fault_response(spec: FaultSpec) -> _Response:
    content_type = spec.content_type
    if spec.body is msgspec.UNSET:
        payload = b""
    elif isinstance(spec.body, str):
        payload = spec.body.encode()
        content_type = content_type or "text/plain; charset=utf-8"
    else:
        payload = msgspec.json.encode(spec.body)
        content_type = content_type or "application/json"
    headers = [(b"content-length", str(len(payload)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    headers.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in spec.headers.items())
    return _Response(spec.status or 200, headers, payload)


async def _reply(send: Send, inbound: _Inbound, response: _Response, drip_seconds: float) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
    body = response.body
    if drip_seconds <= 0 or len(body) <= 1:
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    for index in range(len(body)):
        last = index == len(body) - 1
        await send({"type": "http.response.body", "body": body[index : index + 1], "more_body": not last})
        if not last and not await inbound.stay(drip_seconds):
            return


async def _drop(send: Send) -> None:
    """Abort the TCP connection without an answer (in-process, raise the error a client would see)."""
    # uvicorn hands the app its RequestResponseCycle's bound `send`; the cycle holds the transport.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("emulator dropped the connection")
    transport.abort()
    # abort() schedules connection_lost for the next loop turn; until it has run, uvicorn would answer an
    # app that returns without a response with a 500 (and log an error).
    await asyncio.sleep(0)
