"""How long a client may take to send its request, and what it means when it leaves before it has.

Two layers share one deadline, counted from the request's first byte:
- the server's HTTP/1 protocol (`bounded_httptools`) bounds the headers, which no ASGI code sees arriving, closes
  idle connections (also ones that never send a byte) and, as a backstop, drops a connection whose body is still
  arriving after the deadline whatever the app did;
- the ASGI layer (`ReadDeadline`) bounds the body where the app reads it, so a slow body is answered 408 through
  the app, and turns a client gone mid-body into ClientClosed instead of a server error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.ops.context import request_info_var

# scope["extensions"] key: the event loop's time when the request's first byte was parsed (set by the protocol).
READ_STARTED = "card_onboarding.read_started"
# After the deadline the app gets this long to send its 408 before the connection is dropped regardless.
ANSWER_GRACE_SECONDS = 1.0
# How often the open connections are checked for a late request: a deadline is acted on at most this late.
SWEEP_SECONDS = 0.25

BARE_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReadTimedOut(Exception):
    """The body had not fully arrived by the request's read deadline."""


class ClientClosed(Exception):
    """The client went away before its request had been read."""


def _note_outcome(outcome: str) -> None:
    info = request_info_var.get()
    if info is not None:
        info.outcome = outcome


class ReadDeadline:
    """Raw ASGI: every `receive` of a request's body must return by the deadline; a disconnect before its end raises.

    Only until the body is complete: after that, waiting for a disconnect is the app's own business.
    """

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Counted from the first byte when the server says when that was, else from now (in-process test clients).
        started = (scope.get("extensions") or {}).get(READ_STARTED)
        if started is None:
            started = asyncio.get_running_loop().time()
        deadline = started + self.timeout_seconds
        complete = False

        async def bounded_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                _note_outcome("request_timeout")
                raise ReadTimedOut from None
            if message["type"] == "http.disconnect":
                _note_outcome("client_closed")
                raise ClientClosed
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)


def bounded_httptools(
    read_timeout_seconds: float, late_answer: Callable[[float], bytes] = lambda waited: BARE_408
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline on each request's headers (uvicorn has none) and on idle sockets.

    `late_answer(waited_seconds)` makes the raw HTTP/1.1 response sent when the headers are late: no request exists
    yet to answer through the app. uvicorn's own keep-alive timer (`timeout_keep_alive`) closes idle connections;
    here it is also armed on a new connection, which uvicorn would otherwise keep open for ever while it sends
    nothing. Deadlines are checked by one sweep over the open connections every SWEEP_SECONDS rather than by a
    timer per request, which showed in the trivial handler's CPU time per request (README, "Choice of server").
    """
    sweeping: asyncio.TimerHandle | None = None

    def sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        nonlocal sweeping
        now = loop.time()
        for connection in list(connections):
            deadline = getattr(connection, "_read_deadline", None)
            if deadline is not None and deadline <= now:
                connection._read_timed_out(now)
        sweeping = loop.call_later(SWEEP_SECONDS, sweep, loop, connections) if connections else None

    class BoundedHttpTools(HttpToolsProtocol):
        _read_deadline: float | None = None  # while a request is being read
        _read_started = 0.0
        _headers_done = False
        _graced = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            nonlocal sweeping
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            if sweeping is None:
                sweeping = self.loop.call_later(SWEEP_SECONDS, sweep, self.loop, self.connections)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            started = self._read_started = self.loop.time()
            self.scope["extensions"] = {READ_STARTED: started}  # type: ignore[typeddict-unknown-key]
            self._headers_done = False
            self._graced = False
            self._read_deadline = started + read_timeout_seconds

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._read_deadline = None
            super().on_message_complete()

        def _read_timed_out(self, now: float) -> None:
            self._read_deadline = None
            if self.transport.is_closing():
                return
            if self._headers_done and not self._graced:
                # The app is answering 408 at this same deadline (ReadDeadline), or has answered without reading the
                # body: a moment to write that answer, then the connection goes, still-arriving body and all.
                self._graced = True
                self._read_deadline = now + ANSWER_GRACE_SECONDS
                return
            previous = self.cycle
            if not self._headers_done and (previous is None or previous.response_complete):
                self.transport.write(late_answer(now - self._read_started))
            self.transport.close()

    return BoundedHttpTools
