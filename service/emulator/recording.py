"""ASGI layer that writes every upstream request, with the status its client saw, to the call log."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.emulator.clock import iso
from service.emulator.faults import FAULT_SCOPE_KEY, FaultMark, upstream_path
from service.emulator.store import CallRecord, Store


class CallRecorder:
    """ASGI middleware feeding `Store.record_call`; it must sit outside the fault injector."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self._app = app
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = upstream_path(scope)
        if path is None:
            await self._app(scope, receive, send)
            return
        at = self._store.clock.now()
        spy = _StatusSpy(send)
        try:
            await self._app(scope, receive, spy.send)
        finally:
            headers = {name.lower(): value for name, value in scope["headers"]}
            mark: FaultMark | None = scope.get(FAULT_SCOPE_KEY)  # type: ignore[assignment]
            dropped = mark is not None and mark.dropped
            self._store.record_call(
                CallRecord(
                    method=scope["method"],
                    path=path,
                    query=scope.get("query_string", b"").decode("latin-1"),
                    status=None if dropped else spy.status,
                    idempotency_key=_header(headers, b"idempotency-key"),
                    request_id=_header(headers, b"x-request-id"),
                    at=iso(at),
                    fault_id=None if mark is None else mark.fault_id,
                    dropped=dropped,
                )
            )


class _StatusSpy:
    """Forwards messages and remembers the response status.

    It also carries the server's transport, because the fault injector finds the connection to drop
    through `send.__self__.transport` (uvicorn's convention) and sees this object's bound `send`.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self.transport: Any = getattr(getattr(send, "__self__", None), "transport", None)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")
