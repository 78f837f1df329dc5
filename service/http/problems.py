"""Every failure as RFC 9457 problem+json: the HTTP status of each stable code (one table) and the mapping of
exceptions to codes. Which nextAction a refusal carries is the core's (service.onboarding.refusals)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from service.http.auth import AuthUnavailable, Unauthenticated
from service.http.middleware import SECURITY_HEADERS
from service.http.middleware import log as request_log
from service.http.reading import ClientClosed, ReadTimedOut
from service.onboarding.actions import GET_STATE, Endpoint, NextAction
from service.onboarding.machine import unexpected_rejection
from service.onboarding.refusals import Refusal, action_for, wait_seconds
from service.ops import metrics
from service.ops.context import note_next_action, request_id_var
from service.yativo import (
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
# nginx's "client closed request": recorded in the metrics and the log line, never sent (nobody is left to read it).
CLIENT_CLOSED_STATUS = 499


class Problem(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    type: str = "about:blank"
    title: str
    status: int
    code: str
    retryable: bool
    request_id: str | None
    next_action: NextAction


# code -> (status, title, retryable)
CODES: dict[str, tuple[int, str, bool]] = {
    "unauthenticated": (401, "Sign in to continue", False),
    "malformed_body": (400, "The request body is not JSON", False),
    "validation_failed": (422, "The request is not valid", False),
    "email_invalid": (422, "This email address is not valid", False),
    "otp_format_invalid": (422, "A code is exactly six digits", False),
    "otp_invalid": (422, "Code is not valid", False),
    "otp_expired": (422, "Code has expired", False),
    "email_unavailable": (409, "This email address cannot be used", False),
    "step_not_available": (409, "This step is not the current one", False),
    "not_found": (404, "No such resource", False),
    "method_not_allowed": (405, "Method not allowed", False),
    "request_timeout": (408, "The request took too long to arrive", True),
    "payload_too_large": (413, "The request body is too large", False),
    "unsupported_media_type": (415, "The request body must be JSON", False),
    "rate_limited": (429, "Too many requests", True),
    "otp_attempts_exceeded": (429, "Too many wrong codes", True),
    "internal_error": (500, "Something went wrong on our side", True),
    "upstream_bad_response": (502, "The card provider answered unexpectedly", True),
    "auth_unavailable": (503, "Sign-in cannot be checked right now", True),
    "upstream_unavailable": (503, "The card provider is unavailable", True),
    "upstream_timeout": (504, "The card provider did not answer in time", True),
    # Security counters could not be checked (Redis unavailable): refused rather than let through unchecked.
    "service_unavailable": (503, "Please try again in a moment", True),
    "webhook_signature_invalid": (401, "The webhook signature is not valid", False),
    "webhooks_not_configured": (503, "Webhooks are not configured", True),
    "webhook_store_unavailable": (503, "Deliveries cannot be recorded right now", True),
}


def problem(
    code: str,
    action: NextAction,
    *,
    retry_after: float | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    status, default_title, retryable = CODES[code]
    note_next_action(action)
    out = dict(headers or {})
    if retryable:
        out["Retry-After"] = str(wait_seconds(retry_after))
    body = Problem(
        title=title or default_title,
        status=status,
        code=code,
        retryable=retryable,
        request_id=request_id_var.get(),
        next_action=action,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=out)


def _same_call(request: Request[Any, Any, Any]) -> Endpoint:
    """The call to repeat or fix: this one, when it is one of ours; else the state, which always exists."""
    path = request.url.path.rstrip("/") or "/"
    route = request.scope.get("path_template")
    if route is None or request.method not in ("GET", "POST"):
        return GET_STATE
    return Endpoint(request.method, path)  # type: ignore[arg-type]


def on_refusal(request: Request[Any, Any, Any], exc: Refusal) -> Response[Problem]:
    return problem(exc.code, exc.action, retry_after=exc.retry_after, headers=exc.headers)


def on_unauthenticated(request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Problem]:
    return problem(
        "unauthenticated",
        action_for("unauthenticated"),
        headers={"WWW-Authenticate": 'Bearer realm="card-onboarding"'},
    )


def on_auth_unavailable(request: Request[Any, Any, Any], exc: AuthUnavailable) -> Response[Problem]:
    log.error("auth_keys_unavailable")
    return _retry_later(request, "auth_unavailable", 5)


def _retry_later(request: Request[Any, Any, Any], code: str, seconds: float | None) -> Response[Problem]:
    return problem(code, action_for(code, _same_call(request), retry_after=seconds), retry_after=seconds)


def on_upstream(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, UpstreamTimeout):
        log.warning("upstream_timeout", reason=exc.reason)
        return _retry_later(request, "upstream_timeout", exc.retry_after)
    if isinstance(exc, UpstreamUnavailable):
        log.warning("upstream_unavailable", reason=exc.reason, upstream_status=exc.status)
        return _retry_later(request, "upstream_unavailable", exc.retry_after)
    if isinstance(exc, UpstreamAuthFailed):
        log.error("upstream_credentials_refused")
        return _retry_later(request, "upstream_unavailable", 30)
    if isinstance(exc, UpstreamRejected):
        log.error("upstream_unexpected_rejection", upstream_status=exc.status, upstream_code=exc.code)
        refusal = unexpected_rejection()
        return problem(refusal.code, refusal.action, title="The card provider refused the request")
    assert isinstance(exc, UpstreamBadResponse)
    log.error("upstream_bad_response", reason=exc.reason, upstream_status=exc.status)
    return _retry_later(request, "upstream_bad_response", None)


def _fix(request: Request[Any, Any, Any], code: str, field: str, message: str, **kw: Any) -> Response[Problem]:
    return problem(code, action_for(code, _same_call(request), errors=[(field, message)]), **kw)


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, RequestEntityTooLarge):
        return _fix(request, "payload_too_large", "body", "The request body is larger than 16 KiB: send less.")
    if isinstance(exc, NotFoundException):
        return problem(
            "not_found",
            action_for("not_found", GET_STATE, errors=[("path", "There is nothing at this address.")]),
        )
    if isinstance(exc, MethodNotAllowedException):
        # Litestar's router names it "allow"; RFC 9110 requires it on every 405.
        allow = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), None)
        methods = f" Use {allow}." if allow else ""
        return problem(
            "method_not_allowed",
            action_for(
                "method_not_allowed",
                GET_STATE,
                errors=[("method", "This address does not take this method." + methods)],
            ),
            headers={"Allow": allow} if allow else None,
        )
    if exc.status_code >= 500:
        return on_internal(request, exc)
    if isinstance(exc, ValidationException):
        # Only parameters Litestar itself checks get here (request bodies are read by the core, after the step
        # check): headers and query strings.
        return _fix(request, "validation_failed", "request", "Check the request's headers and query and send it again.")
    return _fix(request, "validation_failed", "request", "Check the request and send it again.")


def on_read_timeout(request: Request[Any, Any, Any], exc: ReadTimedOut) -> Response[Problem]:
    # The rest of the body may still be on its way: the connection cannot carry another request.
    return problem(
        "request_timeout",
        action_for("request_timeout", _same_call(request)),
        headers={"Connection": "close"},
    )


def on_client_closed(request: Request[Any, Any, Any], exc: ClientClosed) -> Response[None]:
    # Not a failure of ours: the request log line says `outcome=client_closed`, and nothing else is logged.
    return Response(None, status_code=CLIENT_CLOSED_STATUS)


def late_headers_answer(waited_seconds: float) -> bytes:
    """The raw HTTP/1.1 408 for headers that did not arrive in time: no request exists to answer through the app,
    so its log line and metrics are written here, as RequestIdMiddleware writes every other request's."""
    status, title, retryable = CODES["request_timeout"]
    request_id = uuid.uuid4().hex
    action = action_for("request_timeout")
    body = msgspec.json.encode(
        Problem(
            title=title,
            status=status,
            code="request_timeout",
            retryable=retryable,
            request_id=request_id,
            next_action=action,
        )
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"retry-after", str(wait_seconds(None)).encode()),
        *SECURITY_HEADERS,
        (b"x-request-id", request_id.encode()),
    ]
    metrics.observe_request("other", "unmatched", status, waited_seconds)
    request_log.info(
        "request",
        route="unmatched",
        status=status,
        duration_ms=round(waited_seconds * 1000, 2),
        request_id=request_id,
        outcome="request_timeout",
    )
    return b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body


def on_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return _retry_later(request, "internal_error", None)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Refusal: on_refusal,
    Unauthenticated: on_unauthenticated,
    AuthUnavailable: on_auth_unavailable,
    UpstreamTimeout: on_upstream,
    UpstreamUnavailable: on_upstream,
    UpstreamAuthFailed: on_upstream,
    UpstreamRejected: on_upstream,
    UpstreamBadResponse: on_upstream,
    HTTPException: on_http_exception,
    ReadTimedOut: on_read_timeout,
    ClientClosed: on_client_closed,
    Exception: on_internal,
}
