"""Per-request context shared with adapters without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar

# The inbound request's id, sent upstream as X-Request-ID so one id follows a request end to end.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestInfo:
    """What the canonical request log line reports beyond method, path and status; filled in as the request runs."""

    __slots__ = ("next_action", "outcome", "span", "upstream_calls", "user")

    def __init__(self) -> None:
        self.user: str | None = None
        self.next_action: str | None = None
        self.upstream_calls = 0
        # Set only when the request ended without being read: "client_closed" or "request_timeout".
        self.outcome: str | None = None
        # The request's server span, when tracing is on: the request line is written after that span has ended.
        self.span: object | None = None


request_info_var: ContextVar[RequestInfo | None] = ContextVar("request_info", default=None)


def note_next_action(action: object) -> None:
    """Record the nextAction type an answer carries (its msgspec tag), for the request log line."""
    info = request_info_var.get()
    if info is not None:
        info.next_action = type(action).__struct_config__.tag  # type: ignore[attr-defined]


def note_user(uid: str) -> None:
    info = request_info_var.get()
    if info is not None:
        info.user = uid[:16]  # already a digest of `sub`; a prefix is enough to follow one user through the logs


def count_upstream_call() -> None:
    info = request_info_var.get()
    if info is not None:
        info.upstream_calls += 1
