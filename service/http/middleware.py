"""The outermost layer of every answer: the request id (taken when sane, else generated) and the security headers."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.ops import metrics
from service.ops.context import RequestInfo, request_id_var, request_info_var

log = structlog.get_logger("service.request")
_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")

# An API answer is never cached, sniffed, framed or leaked through a Referer. No HSTS here: TLS ends at the
# ingress, which owns the host name and so the Strict-Transport-Security policy for it.
SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)
_OURS = frozenset(name for name, _ in SECURITY_HEADERS) | {b"x-request-id"}
# The one Cache-Control a handler may set instead of no-store: the conditional GET of the caller's state, which a
# browser may keep for that user but must revalidate before every use (service/http/conditional.py).
REVALIDATE = b"private, no-cache"
_REVALIDATED = (*(h for h in SECURITY_HEADERS if h[0] != b"cache-control"), (b"cache-control", REVALIDATE))
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RequestIdMiddleware:
    """Raw ASGI around the whole app (not per route), so 404s, 405s, CORS preflights and errors pass it too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = incoming.decode() if incoming is not None and _SANE.match(incoming) else uuid.uuid4().hex
        id_header = (b"x-request-id", request_id.encode())
        token = request_id_var.set(request_id)
        info = RequestInfo()
        info_token = request_info_var.set(info)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Ours replace any a handler set (one Cache-Control, never two that disagree), except the one
                # revalidation policy.
                headers = message.get("headers", ())
                kept = [h for h in headers if h[0].lower() not in _OURS]
                if any(k.lower() == b"cache-control" and v == REVALIDATE for k, v in headers):
                    message["headers"] = [*_vary_by_token(kept), *_REVALIDATED, id_header]
                else:
                    message["headers"] = [*kept, *SECURITY_HEADERS, id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The one canonical line per request: what was asked, of whom, what came of it and what it cost.
            elapsed = time.perf_counter() - started
            route = scope.get("path_template")
            if route != "/metrics":
                # Only a known method gets its own label: anything else cannot grow the label set.
                method = scope["method"] if scope["method"] in _METHODS else "other"
                metrics.observe_request(method, route or "unmatched", status, elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route or "unmatched",
                path=None if route else scope["path"],  # only when no route matched, to see what was asked
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                user=info.user,
                next_action=info.next_action,
                upstream_calls=info.upstream_calls,
                **({"outcome": info.outcome} if info.outcome else {}),
            )
            request_info_var.reset(info_token)
            request_id_var.reset(token)
            structlog.contextvars.unbind_contextvars("request_id")


def _vary_by_token(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A kept answer differs per user: Vary on Authorization, merged with what CORS set (it replaces, not adds)."""
    vary = [v for k, v in headers if k.lower() == b"vary"]
    others = [h for h in headers if h[0].lower() != b"vary"]
    return [*others, (b"vary", b", ".join([*vary, b"Authorization"]))]


class AnswerOptions:
    """Answers a plain OPTIONS (not a CORS preflight) with the path's real `Allow`, without a token.

    Litestar's generated OPTIONS handler lists only the methods of the first handler registered on a path
    (GET but not POST on /v1/card-onboarding), and it sits behind the controller's guard.
    """

    def __init__(self, app: ASGIApp, allow: dict[str, str]) -> None:
        self.app = app
        self._allow = {path: value.encode() for path, value in allow.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            allow = self._allow.get(scope["path"].rstrip("/") or "/")
            if allow is not None and not any(k == b"access-control-request-method" for k, _ in scope["headers"]):
                await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow)]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)
