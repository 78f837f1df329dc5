"""Per-request context shared with adapters without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar

# The inbound request's id, sent upstream as X-Request-ID so one id follows a request end to end.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
