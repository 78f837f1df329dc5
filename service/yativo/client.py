"""The Yativo HTTP adapter: the only module that imports httpx. Typed calls in, Structs or domain errors out."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import httpx
import msgspec
import stamina
import structlog

from service.ops import metrics
from service.ops.breaker import CircuitBreaker
from service.ops.context import count_upstream_call, request_id_var
from service.ops.tracing import instrument_upstream
from service.yativo import circuits as op
from service.yativo.circuits import Circuits
from service.yativo.errors import (
    ErrorData,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.yativo.models import (
    CardList,
    Customer,
    CustomerReset,
    FlowStep,
    KycLink,
    KycStatus,
    Onboarded,
    PhoneRequested,
    PhoneVerified,
    SofAnswer,
    SofQuestions,
    SofSubmitted,
    Token,
    VirtualCard,
)
from service.yativo.transport import default_transport

T = TypeVar("T")
log = structlog.get_logger(__name__)

# Never wait longer than this for a Retry-After the upstream asks for; past it we answer "retry later".
MAX_RETRY_AFTER_SECONDS = 60.0
# Used when the token answer gives no refresh hint; the docs recommend refreshing 300 s before expiry.
DEFAULT_REFRESH_BEFORE_SECONDS = 300.0
# Our answers are small JSON documents; anything bigger is refused before it is buffered whole.
MAX_BODY_BYTES = 256 * 1024
# At most three attempts within two seconds; the inbound request's own deadline bounds it all anyway.
RETRY_ATTEMPTS = 3
RETRY_BUDGET_SECONDS = 2.0
# A 429 asking for a longer wait than this is passed on to the frontend as retry_later instead.
MAX_INLINE_RETRY_AFTER_SECONDS = 1.0
TOKEN_OPERATION = "POST /auth/token"


class _Envelope(msgspec.Struct, Generic[T], kw_only=True):
    data: T


class _ErrorEnvelope(msgspec.Struct, kw_only=True):
    # `error_code` on /yativo-card/*, `error` on /card-issuer/* and /auth/token.
    error_code: str | None = None
    error: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)
_error_data_decoder = msgspec.json.Decoder(ErrorData)
_token_decoder = msgspec.json.Decoder(Token)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[T]) -> msgspec.json.Decoder[_Envelope[T]]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(_Envelope[kind])  # type: ignore[valid-type]
    return decoder


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped; None if unusable."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _CachedToken(msgspec.Struct, frozen=True):
    value: str
    refresh_at: float  # monotonic time after which a new token is fetched


class YativoClient:
    """One long-lived client per process. Obtains, caches and refreshes the issuer access token itself."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        circuits: Circuits | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self._circuits = circuits or Circuits()
        self._api_key = api_key
        self._api_secret = api_secret
        self._clock = clock
        self._token: _CachedToken | None = None
        self._token_fetch: asyncio.Future[_CachedToken] | None = None
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self._upstream = _Upstream(
            base_url,
            instrument_upstream(transport if transport is not None else default_transport(limits), tracer_provider),
            # httpx timeouts are per phase; the overall per-request deadline is the caller's.
            httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
        )

    @property
    def circuits(self) -> Circuits:
        return self._circuits

    async def aclose(self) -> None:
        await self._upstream.transport.aclose()

    async def __aenter__(self) -> YativoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- customer namespace -------------------------------------------------------------------

    async def onboard(self, email: str, external_customer_id: str, *, idempotency_key: str | None = None) -> Onboarded:
        body = {"email": email, "external_customer_id": external_customer_id}
        return await self._call(
            op.ONBOARD, "POST", "/yativo-card/customers/onboard", Onboarded, json=body, idempotency_key=idempotency_key
        )

    async def verify_otp(self, card_id: str, otp: str, *, idempotency_key: str | None = None) -> FlowStep:
        return await self._call(
            op.EMAIL_OTP,
            "POST",
            _customer(card_id, "verify-otp"),
            FlowStep,
            json={"otp": otp},
            idempotency_key=idempotency_key,
        )

    async def reset_customer(self, card_id: str, *, idempotency_key: str | None = None) -> CustomerReset:
        """Delete a customer whose email is not verified yet, so the user can start over with another email
        (the old email can never be used again: the upstream burns it)."""
        return await self._call(
            op.RESET, "POST", _customer(card_id, "reset"), CustomerReset, json={}, idempotency_key=idempotency_key
        )

    async def kyc_link(self, card_id: str) -> KycLink:
        return await self._call(op.KYC_LINK, "GET", _customer(card_id, "kyc-link"), KycLink)

    async def kyc_status(self, card_id: str) -> KycStatus:
        return await self._call(op.KYC_STATUS, "GET", _customer(card_id, "kyc-status"), KycStatus)

    async def source_of_funds_questions(self, card_id: str, *, locale: str = "en") -> SofQuestions:
        return await self._call(
            op.SOF_QUESTIONS, "GET", _customer(card_id, "source-of-funds"), SofQuestions, params={"locale": locale}
        )

    async def submit_source_of_funds(
        self, card_id: str, answers: Sequence[SofAnswer], *, idempotency_key: str | None = None
    ) -> SofSubmitted:
        return await self._call(
            op.SOF_ANSWERS,
            "POST",
            _customer(card_id, "source-of-funds"),
            SofSubmitted,
            json={"answers": list(answers)},
            idempotency_key=idempotency_key,
        )

    async def request_phone_verification(
        self, card_id: str, phone_number: str, *, idempotency_key: str | None = None
    ) -> PhoneRequested:
        # The upstream's only camelCase field.
        return await self._call(
            op.PHONE,
            "POST",
            _customer(card_id, "phone/request-verification"),
            PhoneRequested,
            json={"phoneNumber": phone_number},
            idempotency_key=idempotency_key,
        )

    async def verify_phone(self, card_id: str, code: str, *, idempotency_key: str | None = None) -> PhoneVerified:
        # `code` here, where email verification says `otp`.
        return await self._call(
            op.SMS_OTP,
            "POST",
            _customer(card_id, "phone/verify"),
            PhoneVerified,
            json={"code": code},
            idempotency_key=idempotency_key,
        )

    async def create_virtual_card(self, card_id: str, *, idempotency_key: str | None = None) -> VirtualCard:
        return await self._call(
            op.CARD, "POST", _customer(card_id, "cards/virtual"), VirtualCard, json={}, idempotency_key=idempotency_key
        )

    async def list_cards(self, card_id: str) -> CardList:
        return await self._call(op.CARD_LIST, "GET", _customer(card_id, "cards"), CardList)

    # --- card-issuer namespace ----------------------------------------------------------------

    async def lookup_customer(self, **identifier: str) -> Customer | None:
        """Find a customer by exactly one identifier (external_id, email, yativo_card_id, ...); None if unknown."""
        if len(identifier) != 1:
            raise TypeError("lookup_customer takes exactly one identifier")
        try:
            return await self._call(op.LOOKUP, "GET", "/card-issuer/lookup-customer", Customer, params=identifier)
        except UpstreamRejected as exc:
            if exc.code == "CUSTOMER_NOT_FOUND":
                return None
            raise

    async def get_customer(self, customer_id: str) -> Customer | None:
        try:
            path = f"/card-issuer/customers/{quote(customer_id, safe='')}"
            return await self._call(op.CUSTOMER, "GET", path, Customer)
        except UpstreamRejected as exc:
            if exc.code == "CUSTOMER_NOT_FOUND":
                return None
            raise

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self,
        circuit: str,
        method: str,
        path: str,
        kind: type[T],
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        content = None if json is None else _encoder.encode(json)
        operation = _operation(method, path)
        # Retries only where they cannot repeat an effect: reads, requests that never left this process,
        # and 429s (refused unprocessed) whose Retry-After is short. Bounded in attempts and time, jittered.
        async for attempt in stamina.retry_context(
            on=_retry_hook(method),
            attempts=RETRY_ATTEMPTS,
            timeout=RETRY_BUDGET_SECONDS,
            wait_initial=0.05,
            wait_max=0.5,
            wait_jitter=0.05,
        ):
            with attempt:
                return await self._attempt(circuit, operation, method, path, kind, content, params, idempotency_key)
        raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover

    async def _attempt(
        self,
        circuit: str,
        operation: str,
        method: str,
        path: str,
        kind: type[T],
        content: bytes | None,
        params: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> T:
        breaker = self._circuits[circuit]
        wait = breaker.allow()
        if wait is not None:
            metrics.UPSTREAM_CALLS.labels(operation, "circuit_open").inc()
            raise UpstreamUnavailable(f"{circuit} circuit open", retry_after=wait, circuit_open=True)
        try:
            token = await self._access_token()
        except BaseException:
            breaker.release()  # the token circuit has judged this; the operation itself was never tried
            raise
        started = time.perf_counter()
        outcome = "ok"
        status: int | None = None
        token_failure: BaseException | None = None
        try:
            response = await self._send(method, path, token, content, params, idempotency_key)
            if response.status_code == 401:
                # The token may have been revoked or expired early: refresh once, retry once.
                self._forget(token)
                try:
                    token = await self._access_token()
                except BaseException as exc:
                    token_failure = exc
                    raise
                response = await self._send(method, path, token, content, params, idempotency_key)
                if response.status_code == 401:
                    raise UpstreamAuthFailed("the upstream refused a freshly issued access token")
            status = response.status_code
            result = _read(response, kind)
        except BaseException as exc:
            if exc is token_failure:
                outcome, verdict = "token_unavailable", breaker.release
            else:
                outcome, verdict = _judge(exc, breaker)
            verdict()
            raise
        finally:
            self._observe(operation, outcome, status, started)
        breaker.success()
        return result

    def _observe(self, operation: str, outcome: str, status: int | None, started: float) -> None:
        elapsed = time.perf_counter() - started
        metrics.UPSTREAM_CALLS.labels(operation, outcome).inc()
        metrics.UPSTREAM_SECONDS.labels(operation).observe(elapsed)
        count_upstream_call()
        log.info(
            "upstream_call", operation=operation, status=status, outcome=outcome, duration_ms=round(elapsed * 1000, 2)
        )

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> _Answer:
        headers = {"Authorization": f"Bearer {token}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return await _exchange(self._upstream, method, path, headers=headers, content=content, params=params)

    async def _access_token(self) -> str:
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        # Single flight: every caller that finds the token stale awaits the same fetch.
        if self._token_fetch is None or self._token_fetch.done():
            self._token_fetch = asyncio.ensure_future(self._fetch_token())
        # shield: one caller giving up must not cancel the fetch the others wait for.
        return (await asyncio.shield(self._token_fetch)).value

    async def _fetch_token(self) -> _CachedToken:
        breaker = self._circuits[op.TOKEN]
        wait = breaker.allow()
        if wait is not None:
            metrics.UPSTREAM_CALLS.labels(TOKEN_OPERATION, "circuit_open").inc()
            raise UpstreamUnavailable("token circuit open", retry_after=wait, circuit_open=True)
        started = time.perf_counter()
        outcome = "ok"
        status: int | None = None
        try:
            cached, status = await self._exchange_token()
        except BaseException as exc:
            outcome, verdict = _judge(exc, breaker)
            status = getattr(exc, "status", None)
            verdict()
            raise
        finally:
            self._observe(TOKEN_OPERATION, outcome, status, started)
        breaker.success()
        self._token = cached
        return cached

    async def _exchange_token(self) -> tuple[_CachedToken, int]:
        started = self._clock()
        response = await _exchange(
            self._upstream,
            "POST",
            "/auth/token",
            headers={"Content-Type": "application/json"},
            content=_encoder.encode({"api_key": self._api_key, "api_secret": self._api_secret}),
        )
        if response.status_code in (400, 401, 403):
            raise UpstreamAuthFailed(f"the upstream refused our API credentials ({response.status_code})")
        _raise_for_unavailable(response)
        if response.status_code != 200:
            raise UpstreamBadResponse("unexpected status from the token endpoint", status=response.status_code)
        try:
            token = _token_decoder.decode(response.content)
        except msgspec.DecodeError:
            raise UpstreamBadResponse("token answer is not the documented shape", status=200) from None
        lifetime = max(token.expires_in, 0.0)
        hint = token.refresh_recommendation.refresh_before_seconds if token.refresh_recommendation else None
        # Refresh early, but never so early that a short-lived token is refetched on every call.
        margin = min(hint if hint is not None else DEFAULT_REFRESH_BEFORE_SECONDS, lifetime / 2)
        return _CachedToken(token.access_token, started + lifetime - margin), response.status_code

    def _forget(self, token: str) -> None:
        if self._token is not None and self._token.value == token:
            self._token = None


class _Answer:
    """An upstream answer read in full (and bounded): status, headers and body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


def _judge(exc: BaseException, breaker: CircuitBreaker) -> tuple[str, Callable[[], None]]:
    """The metric outcome of a failed call, and what it tells its circuit."""
    if isinstance(exc, UpstreamRejected):
        # The upstream is up and said no (a wrong code, an unknown customer): the operation works.
        return "rejected", breaker.success
    if isinstance(exc, UpstreamTimeout):
        return "timeout", breaker.failure
    if isinstance(exc, UpstreamUnavailable):
        # A 429 counts too: a circuit that stays closed through one would keep every request paying for it.
        return ("rate_limited" if exc.status == 429 else "unavailable"), breaker.failure
    if isinstance(exc, UpstreamBadResponse):
        return "bad_response", breaker.failure
    if isinstance(exc, UpstreamAuthFailed):
        return "auth_failed", breaker.release  # our credentials, not the endpoint: an operator problem
    return "cancelled", breaker.release


def _retry_hook(method: str) -> Callable[[Exception], bool | float]:
    def hook(exc: Exception) -> bool | float:
        if not isinstance(exc, UpstreamUnavailable) or exc.circuit_open:
            return False
        if exc.status == 429:
            # Refused before any processing, so safe for every method; wait only as long as asked, if short.
            if exc.retry_after is not None and exc.retry_after <= MAX_INLINE_RETRY_AFTER_SECONDS:
                return max(exc.retry_after, 0.05)
            return False
        if method == "GET":
            return True
        return not exc.maybe_committed and exc.status is None  # a POST only when it never left this process

    return hook


def _operation(method: str, path: str) -> str:
    """A bounded metric label: the path with ids and queries taken out."""
    if path.startswith("/yativo-card/customers/") and path.count("/") > 3:
        return f"{method} /yativo-card/customers/{{id}}/{path.split('/', 4)[4]}"
    if path.startswith("/card-issuer/customers/"):
        return f"{method} /card-issuer/customers/{{id}}"
    return f"{method} {path}"


def _customer(card_id: str, action: str) -> str:
    # The id comes from the upstream or our store, never the frontend; quoting keeps it one path segment.
    return f"/yativo-card/customers/{quote(card_id, safe='')}/{action}"


class _Upstream:
    """Builds each upstream request itself and hands it to the transport.

    httpx.AsyncClient.send adds what this client never uses (cookies, auth flows, redirects, URL merging): about a
    quarter of a millisecond of CPU per call here, about what the aiohttp pool under it costs (BENCHMARKS.md, run
    E). Kept from httpx: its Request and Response, its transports (and so the test seam), its per-phase timeouts.
    """

    __slots__ = ("base", "headers", "timeout", "transport")

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout) -> None:
        self.base = base_url.rstrip("/")
        self.transport = transport
        self.timeout = timeout.as_dict()
        self.headers = {"Accept": "application/json", "User-Agent": "card-onboarding-bff"}

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        content: bytes | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        url = self.base + path
        if params:
            url += "?" + urlencode(params)
        request = httpx.Request(
            method, url, headers={**self.headers, **headers}, content=content, extensions={"timeout": self.timeout}
        )
        return await self.transport.handle_async_request(request)


async def _exchange(
    http: _Upstream,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> _Answer:
    try:
        response = await http.send(method, path, headers, content, params)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Never left this process: certainly not committed upstream.
        raise UpstreamUnavailable(type(exc).__name__, maybe_committed=False) from None
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(type(exc).__name__, maybe_committed=True) from None
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        # Dropped mid-exchange: the upstream may have acted on the request.
        raise UpstreamUnavailable(type(exc).__name__, maybe_committed=True) from None
    try:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise UpstreamBadResponse("answer is too large", status=response.status_code)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise UpstreamBadResponse("answer is too large", status=response.status_code)
            chunks.append(chunk)
        return _Answer(response.status_code, response.headers, b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(type(exc).__name__, maybe_committed=True) from None
    except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
        raise UpstreamUnavailable(type(exc).__name__, maybe_committed=True) from None
    finally:
        await response.aclose()


def _raise_for_unavailable(response: _Answer) -> None:
    status = response.status_code
    if status == 429:
        raise UpstreamUnavailable(
            "rate limited", status=429, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    if status >= 500:
        raise UpstreamUnavailable(
            f"server error {status}", status=status, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )


def _read(response: _Answer, kind: type[T]) -> T:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return _decoder(kind).decode(response.content).data
        except msgspec.DecodeError:
            raise UpstreamBadResponse(f"answer is not a valid {kind.__name__}", status=status) from None
    _raise_for_unavailable(response)
    if 400 <= status < 500:
        raise _rejection(response)
    raise UpstreamBadResponse(f"unexpected status {status}", status=status)


def _rejection(response: _Answer) -> UpstreamRejected | UpstreamBadResponse:
    try:
        body = _error_decoder.decode(response.content)
    except msgspec.DecodeError:
        return UpstreamBadResponse("error answer is not JSON", status=response.status_code)
    code = body.error_code or body.error
    if not code:
        return UpstreamBadResponse("error answer carries no error code", status=response.status_code)
    data = None
    if bytes(body.data) != b"null":
        try:
            data = _error_data_decoder.decode(body.data)
        except msgspec.DecodeError:
            data = None  # an odd `data` must not hide the code itself
    return UpstreamRejected(response.status_code, code, data)
