"""Every failure as RFC 9457 problem+json with a stable code and a nextAction, mapped in this one module."""

from __future__ import annotations

import math
import re
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
from service.onboarding.actions import (
    ContactSupport,
    Endpoint,
    FieldError,
    FixInput,
    NextAction,
    RetryLater,
    SignIn,
)
from service.ops.context import note_next_action, request_id_var
from service.usecases import OnboardingError
from service.yativo import (
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
DEFAULT_RETRY_AFTER_SECONDS = 2


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
    "validation_failed": (422, "The request is not valid", False),
    "email_invalid": (422, "This email address is not valid", False),
    "otp_format_invalid": (422, "A code is exactly six digits", False),
    "otp_invalid": (422, "Code is not valid", False),
    "otp_expired": (422, "Code has expired", False),
    "email_unavailable": (409, "This email address cannot be used", False),
    "step_not_available": (409, "This step is not the current one", False),
    "not_found": (404, "No such resource", False),
    "method_not_allowed": (405, "Method not allowed", False),
    "payload_too_large": (413, "The request body is too large", False),
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

# Body fields whose validation has a code of its own.
_FIELD_CODES = {"code": "otp_format_invalid", "email": "email_invalid"}
_FIELD_RE = re.compile(r"`\$\.([A-Za-z_][A-Za-z0-9_]*)")


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
        out["Retry-After"] = str(
            max(1, math.ceil(retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS))
        )
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
    method = request.method if request.method in ("GET", "POST") else "GET"
    return Endpoint(method, request.url.path)  # type: ignore[arg-type]


def _retry(request: Request[Any, Any, Any], seconds: float | None) -> RetryLater:
    wait = max(1, math.ceil(seconds if seconds is not None else DEFAULT_RETRY_AFTER_SECONDS))
    return RetryLater(endpoint=_same_call(request), retry_after_seconds=wait)


def on_onboarding_error(request: Request[Any, Any, Any], exc: OnboardingError) -> Response[Problem]:
    return problem(exc.code, exc.action, retry_after=exc.retry_after, headers=exc.headers)


def on_unauthenticated(request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Problem]:
    return problem("unauthenticated", SignIn(), headers={"WWW-Authenticate": 'Bearer realm="card-onboarding"'})


def on_auth_unavailable(request: Request[Any, Any, Any], exc: AuthUnavailable) -> Response[Problem]:
    log.error("auth_keys_unavailable")
    return problem("auth_unavailable", _retry(request, 5))


def on_upstream(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, UpstreamTimeout):
        log.warning("upstream_timeout", reason=exc.reason)
        return problem("upstream_timeout", _retry(request, exc.retry_after), retry_after=exc.retry_after)
    if isinstance(exc, UpstreamUnavailable):
        log.warning("upstream_unavailable", reason=exc.reason, upstream_status=exc.status)
        return problem("upstream_unavailable", _retry(request, exc.retry_after), retry_after=exc.retry_after)
    if isinstance(exc, UpstreamAuthFailed):
        log.error("upstream_credentials_refused")
        return problem("upstream_unavailable", _retry(request, 30), retry_after=30)
    if isinstance(exc, UpstreamRejected):
        # An upstream refusal this service has no meaning for: safe to show only "contact support".
        log.error("upstream_unexpected_rejection", upstream_status=exc.status, upstream_code=exc.code)
        return problem(
            "upstream_bad_response",
            ContactSupport(reason="unknown_state"),
            title="The card provider refused the request",
        )
    assert isinstance(exc, UpstreamBadResponse)
    log.error("upstream_bad_response", reason=exc.reason, upstream_status=exc.status)
    return problem("upstream_bad_response", _retry(request, None))


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, RequestEntityTooLarge):
        return problem(
            "payload_too_large",
            FixInput(
                endpoint=_same_call(request), errors=[FieldError("body", "The request body is larger than 16 KiB.")]
            ),
        )
    if isinstance(exc, ValidationException):
        return on_validation(request, exc)
    if isinstance(exc, NotFoundException):
        return problem(
            "not_found", FixInput(endpoint=_same_call(request), errors=[FieldError("path", "No such resource.")])
        )
    if isinstance(exc, MethodNotAllowedException):
        # Litestar's router names it "allow"; RFC 9110 requires it on every 405.
        allow = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), None)
        return problem(
            "method_not_allowed",
            FixInput(endpoint=_same_call(request), errors=[FieldError("method", "This method is not allowed here.")]),
            headers={"Allow": allow} if allow else None,
        )
    if exc.status_code >= 500:
        return on_internal(request, exc)
    return problem(
        "validation_failed",
        FixInput(endpoint=_same_call(request), errors=[FieldError("request", "The request is not valid.")]),
    )


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc)
    fields = {e.field for e in errors}
    code = "validation_failed"
    if len(fields) == 1:
        code = _FIELD_CODES.get(next(iter(fields)), code)
    return problem(code, FixInput(endpoint=_same_call(request), errors=errors))


def on_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return problem("internal_error", _retry(request, None))


def _field_errors(exc: ValidationException) -> list[FieldError]:
    """Field names and messages a person can act on; never echoes the submitted value."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[FieldError] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        key = item.get("key")
        match = _FIELD_RE.search(message)
        field = match.group(1) if match else (key if isinstance(key, str) and key != "data" else "body")
        errors.append(FieldError(field, _plain(message)))
    if not errors:
        errors.append(FieldError("body", "The body is not valid JSON of the expected shape."))
    return errors


def _plain(message: str) -> str:
    text = message.split(" - at `", 1)[0].strip() or "Invalid value"
    return text[:200]


EXCEPTION_HANDLERS: dict[Any, Any] = {
    OnboardingError: on_onboarding_error,
    Unauthenticated: on_unauthenticated,
    AuthUnavailable: on_auth_unavailable,
    UpstreamTimeout: on_upstream,
    UpstreamUnavailable: on_upstream,
    UpstreamAuthFailed: on_upstream,
    UpstreamRejected: on_upstream,
    UpstreamBadResponse: on_upstream,
    HTTPException: on_http_exception,
    Exception: on_internal,
}
