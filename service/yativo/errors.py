"""Domain exceptions raised by the Yativo client: what went wrong upstream, never how it was said."""

from __future__ import annotations

import msgspec


class ErrorData(msgspec.Struct, frozen=True, kw_only=True):
    """The `data` an upstream error may carry; on resume conflicts it names the existing customer."""

    yativo_card_id: str | None = None
    flow_status: str | None = None
    next_step: str | None = None
    external_customer_id: str | None = None
    account_type: str | None = None


class YativoError(Exception):
    """Base of every failure the client reports."""


class UpstreamRejected(YativoError):
    """The upstream answered a request with a business error (4xx with an error code).

    Both envelopes land here: `error_code` (customer namespace) and `error` (card-issuer, auth).
    Some of these are not failures to the product (CUSTOMER_CARD_ALREADY_ACTIVE is a resume signal);
    the caller decides by `code`, never by `status`.
    """

    def __init__(self, status: int, code: str, data: ErrorData | None = None) -> None:
        super().__init__(f"upstream rejected the request: {status} {code}")
        self.status = status
        self.code = code
        self.data = data or ErrorData()


class UpstreamUnavailable(YativoError):
    """The upstream could not be reached or answered 5xx/429; the request may be retried later."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_committed: bool = False,
        circuit_open: bool = False,
    ) -> None:
        super().__init__(f"upstream unavailable: {reason}")
        self.reason = reason
        # True when this process did not even try: the circuit breaker is open after repeated failures.
        self.circuit_open = circuit_open
        self.status = status
        self.retry_after = retry_after
        # True when the request may have reached the upstream and been acted on (read timeout, dropped
        # connection): a mutating call must then be reconciled by reading before it is ever re-sent.
        self.maybe_committed = maybe_committed


class UpstreamTimeout(UpstreamUnavailable):
    """No complete answer in time. The upstream may have committed the request: reconcile before re-sending."""


class UpstreamBadResponse(YativoError):
    """The upstream answered something this client cannot trust (not JSON, missing fields, wrong types)."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"upstream bad response: {reason}")
        self.reason = reason
        self.status = status


class UpstreamAuthFailed(YativoError):
    """Our own API credentials were refused: an operator problem, never the end user's."""
