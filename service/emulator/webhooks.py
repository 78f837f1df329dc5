"""Yativo's card webhooks as the emulator produces them: the event envelope and the signed delivery headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import msgspec

from service.emulator.clock import iso

# Card status events and the status string the upstream puts in `data.status` (documented examples: `Frozen`,
# `Lost`, `active` for unfrozen).
CARD_STATUS_EVENTS = {
    "frozen": ("card.frozen", "Frozen"),
    "active": ("card.unfrozen", "active"),
    "voided": ("card.voided", "Voided"),
    "lost": ("card.lost", "Lost"),
    "stolen": ("card.stolen", "Stolen"),
    "cancelled": ("card.cancelled", "Cancelled"),
    "deactivated": ("card.deactivated", "Deactivated"),
}


def event(kind: str, data: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """An envelope shaped like the documented one: `evt_<ms>_<random>` id, type, created_at, data."""
    at = time.time() if now is None else now
    return {
        "id": f"evt_{int(at * 1000)}_{secrets.token_hex(4)}",
        "type": kind,
        "created_at": iso(at),
        "data": data,
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `timestamp + "." + raw body` (the card-issuer webhook guide)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_delivery(
    secret: str, envelope: dict[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers of one delivery, as Yativo would POST it to a subscriber."""
    body = msgspec.json.encode(envelope)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Yativo-Signature": signature(secret, stamp, body),
        "X-Yativo-Timestamp": stamp,
        "X-Yativo-Event": str(envelope.get("type", "")),
        "X-Yativo-Delivery-Id": str(envelope.get("id", "")),
    }
    return body, headers
