"""Yativo's signed webhooks: verify, de-duplicate, and apply the card events that change what a user sees.

At-most-once application is service.storage.deliveries (a delivery it cannot record or that another replica is
applying is answered 503, so Yativo delivers it again); which events matter is service.onboarding.events.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from service.http.problems import PROBLEM_JSON, Problem, problem
from service.onboarding.actions import Endpoint
from service.onboarding.events import changes_what_the_user_sees
from service.onboarding.refusals import action_for
from service.settings import Settings
from service.storage.deliveries import Deliveries, DeliveriesUnavailable, DeliveryInFlight

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/v1/webhooks/yativo"
TOLERANCE_SECONDS = 300


class Envelope(msgspec.Struct, frozen=True):
    """The documented envelope; extra fields are tolerated, `data` is read defensively (its shapes are INFERRED)."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    data: dict[str, Any] = {}


class WebhookAck(msgspec.Struct, frozen=True):
    """`applied`, `duplicate` (already processed: not applied again) or `ignored` (not an event we act on)."""

    status: str


_decode_envelope = msgspec.json.Decoder(Envelope).decode


class Unavailable(Exception):
    """Redis could not record or apply the delivery: answer 503 so Yativo delivers it again."""


class WebhookReceiver:
    def __init__(self, settings: Settings, redis: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._secrets = tuple(
            s.encode() for s in (settings.yativo_webhook_secret, settings.yativo_webhook_secret_previous) if s
        )
        self._deliveries = Deliveries(redis)
        self._clock = clock

    @property
    def configured(self) -> bool:
        return bool(self._secrets)

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        """Timestamp within 5 minutes either way and a signature by one of the secrets; compared in constant time."""
        if not signature or not timestamp or len(timestamp) > 12 or not (timestamp.isascii() and timestamp.isdigit()):
            return False
        if abs(self._clock() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        given = signature.encode("utf-8", "replace")
        signed = timestamp.encode() + b"." + body
        matched = False
        for secret in self._secrets:  # every secret is tried, so timing does not tell which one matched
            expected = b"sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest().encode()
            matched |= hmac.compare_digest(expected, given)
        return matched

    async def handle(self, body: bytes) -> str:
        """Apply one verified delivery at most once; raises Unavailable when that cannot be guaranteed."""
        try:
            envelope = _decode_envelope(body)
        except msgspec.DecodeError:  # ValidationError included
            # Signed by Yativo but not an envelope: retrying would not change it, so acknowledge and say so.
            log.error("webhook_malformed")
            return "ignored"
        try:
            first = await self._deliveries.claim(envelope.id)
        except DeliveryInFlight:
            raise Unavailable("delivery in flight") from None
        except DeliveriesUnavailable as exc:
            log.warning("webhook_dedup_unavailable", error=str(exc))
            raise Unavailable("redis") from None
        if not first:
            log.info("webhook_duplicate", event_type=envelope.type, event_id=envelope.id[:64])
            return "duplicate"
        try:
            outcome = await self._apply(envelope)
            await self._deliveries.done(envelope.id)
        except DeliveriesUnavailable as exc:
            log.warning("webhook_apply_failed", event_type=envelope.type, error=str(exc))
            await self._deliveries.release(envelope.id)
            raise Unavailable("redis") from None
        log.info("webhook_processed", event_type=envelope.type, event_id=envelope.id[:64], outcome=outcome)
        return outcome

    async def _apply(self, envelope: Envelope) -> str:
        if not changes_what_the_user_sees(envelope.type):
            return "ignored"  # unknown and non-card types are acknowledged and ignored (at-least-once, open set)
        card_id = envelope.data.get("yativo_card_id")
        if not isinstance(card_id, str) or not 0 < len(card_id) <= 200:
            return "ignored"
        # Drop, not patch: the upstream stays the source of truth and late or reordered deliveries cannot regress it.
        if not await self._deliveries.forget_state_of_owner(card_id):
            return "ignored"  # not a customer of ours with a card we cached: the next read asks the upstream anyway
        return "applied"


_ENDPOINT = Endpoint("POST", WEBHOOK_PATH)


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem, media_type=PROBLEM_JSON, description=description, generate_examples=False
    )


@post(
    WEBHOOK_PATH,
    operation_id="receiveYativoWebhook",
    tags=["webhooks"],
    summary="Signed card events from Yativo (no user token: the HMAC signature authenticates the sender)",
    description=(
        "`X-Yativo-Signature: sha256=<hex>` = HMAC-SHA256 over `X-Yativo-Timestamp` + `.` + the raw body, with "
        "`YATIVO_WEBHOOK_SECRET` (or `YATIVO_WEBHOOK_SECRET_PREVIOUS` during a rotation). Timestamps more than "
        "5 minutes off are refused. A delivery whose event `id` was processed before is acknowledged, not applied."
    ),
    status_code=200,
    security=[],
    responses={
        401: _spec("Missing, wrong or stale signature (`webhook_signature_invalid`)."),
        413: _spec("The body is over 16 KiB (`payload_too_large`)."),
        503: _spec(
            "Webhooks are not configured (`webhooks_not_configured`) or deliveries cannot be recorded "
            "(`webhook_store_unavailable`); Yativo delivers again later."
        ),
    },
)
async def receive_yativo_webhook(
    request: Request[Any, Any, Any],
    signature: Annotated[str | None, HeaderParameter(name="X-Yativo-Signature", required=False)] = None,
    timestamp: Annotated[str | None, HeaderParameter(name="X-Yativo-Timestamp", required=False)] = None,
) -> Response[WebhookAck]:
    receiver: WebhookReceiver = request.app.state.webhooks
    if not receiver.configured:
        # Our misconfiguration, not the sender's fault: 503 keeps Yativo retrying until an operator sets the secret.
        log.error("webhook_secret_not_configured")
        return problem(
            "webhooks_not_configured", action_for("webhooks_not_configured", _ENDPOINT, retry_after=60), retry_after=60
        )  # type: ignore[return-value]
    body = await request.body()  # raw bytes, bounded by the app's 16 KiB limit (413 beyond)
    if not receiver.verify(body, signature, timestamp):
        log.warning("webhook_signature_invalid")
        return problem("webhook_signature_invalid", action_for("webhook_signature_invalid", _ENDPOINT))  # type: ignore[return-value]
    try:
        outcome = await receiver.handle(body)
    except Unavailable:
        return problem(
            "webhook_store_unavailable",
            action_for("webhook_store_unavailable", _ENDPOINT, retry_after=30),
            retry_after=30,
        )  # type: ignore[return-value]
    return Response(WebhookAck(outcome), status_code=200)
