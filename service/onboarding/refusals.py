"""Every stable problem code and the nextAction it answers with: the refusal half of the decision.

The HTTP status of each code is the edge's business (service.http.problems, one table); which screen a refused
request leads to is decided here. Codes decided from the user's state (`otp_invalid`, `step_not_available`, ...)
are raised by the transitions in service.onboarding.machine with the action decide() gives; the codes below are
the ones whose action follows from the code alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from service.onboarding.actions import (
    GET_STATE,
    ContactSupport,
    Endpoint,
    FieldError,
    FixInput,
    NextAction,
    RetryLater,
    SignIn,
)

if TYPE_CHECKING:
    from service.onboarding.snapshot import Snapshot

DEFAULT_RETRY_AFTER_SECONDS = 2


class Refusal(Exception):
    """An expected refusal with a stable code; the answer still says what to do next."""

    def __init__(
        self,
        code: str,
        action: NextAction,
        snapshot: Snapshot | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.action = action
        self.snapshot = snapshot
        self.retry_after = retry_after
        self.headers = headers


# code -> the kind of nextAction it answers with, when the code alone decides it.
SIGN_IN = "sign_in"
FIX_INPUT = "fix_input"
RETRY_LATER = "retry_later"
CONTACT_SUPPORT = "contact_support"
ACTION_OF_CODE: dict[str, str] = {
    "unauthenticated": SIGN_IN,
    "webhook_signature_invalid": SIGN_IN,
    "validation_failed": FIX_INPUT,
    "email_invalid": FIX_INPUT,
    "otp_format_invalid": FIX_INPUT,
    "payload_too_large": FIX_INPUT,
    "malformed_body": FIX_INPUT,
    "unsupported_media_type": FIX_INPUT,
    "not_found": FIX_INPUT,
    "method_not_allowed": FIX_INPUT,
    "request_timeout": RETRY_LATER,
    "rate_limited": RETRY_LATER,
    "otp_attempts_exceeded": RETRY_LATER,  # the per-user hourly limit; one spent code is decided from the state
    "internal_error": RETRY_LATER,
    "upstream_bad_response": RETRY_LATER,
    "upstream_unavailable": RETRY_LATER,
    "upstream_timeout": RETRY_LATER,
    "auth_unavailable": RETRY_LATER,
    "service_unavailable": RETRY_LATER,
    "webhooks_not_configured": RETRY_LATER,
    "webhook_store_unavailable": RETRY_LATER,
    # An upstream refusal this service has no meaning for: only support can move the user on.
    "upstream_rejected": CONTACT_SUPPORT,
}


def wait_seconds(retry_after: float | None) -> int:
    """Whole seconds, at least one: what Retry-After and retryAfterSeconds say."""
    return max(1, math.ceil(retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS))


def action_for(
    code: str,
    endpoint: Endpoint = GET_STATE,
    *,
    retry_after: float | None = None,
    errors: Iterable[tuple[str, str]] = (),
) -> NextAction:
    """The nextAction of a refusal decided by its code: `endpoint` is the call to repeat or fix."""
    kind = ACTION_OF_CODE[code]
    if kind == SIGN_IN:
        return SignIn(endpoint=endpoint)
    if kind == FIX_INPUT:
        found = [FieldError(field, message) for field, message in errors] or [
            FieldError("body", "Check the request and send it again.")
        ]
        return FixInput(endpoint=endpoint, errors=found)
    if kind == RETRY_LATER:
        return RetryLater(endpoint=endpoint, retry_after_seconds=wait_seconds(retry_after))
    return ContactSupport(endpoint=GET_STATE, reason="unknown_state")


def refuse(
    code: str,
    endpoint: Endpoint = GET_STATE,
    *,
    retry_after: float | None = None,
    errors: Iterable[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> Refusal:
    """A Refusal whose action follows from its code (see ACTION_OF_CODE)."""
    action = action_for(code, endpoint, retry_after=retry_after, errors=errors)
    wait = retry_after if ACTION_OF_CODE[code] == RETRY_LATER else None
    return Refusal(code, action, retry_after=wait, headers=headers)
