"""Webhook deliveries in Redis: each event applied at most once, and a card event's effect on its user's state.

`pending` is taken with SET NX before the event is applied and becomes `done` after; a delivery that finds
`pending` (another replica is applying it, or one died half-way) is refused and retried once the mark lapses, so an
event is never knowingly applied twice and never lost to a crash. Seven days outlast Yativo's retry schedule
(the last automatic attempt is about 39 hours after the first). These keys fail CLOSED: when Redis cannot be
asked, the delivery is refused (503) and Yativo delivers it again. Keys: service.storage.keys.
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError

from service.storage import keys

PENDING_TTL_SECONDS = 60
DONE_TTL_SECONDS = 7 * 24 * 3600


class DeliveriesUnavailable(Exception):
    """Redis could not record the delivery, or another replica is applying it: it must be delivered again."""


class DeliveryInFlight(DeliveriesUnavailable):
    """Another replica is applying this event (or one died half-way): delivered again once its mark lapses."""


class Deliveries:
    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def claim(self, event_id: str) -> bool:
        """True when this delivery is the event's first, now marked pending; False when it was processed before."""
        key = keys.webhook_event(event_id)
        try:
            if await self._redis.set(key, b"pending", nx=True, ex=PENDING_TTL_SECONDS):
                return True
            if await self._redis.get(key) == b"done":
                return False
        except (RedisError, OSError) as exc:
            raise DeliveriesUnavailable(type(exc).__name__) from None
        raise DeliveryInFlight(event_id)

    async def done(self, event_id: str) -> None:
        try:
            await self._redis.set(keys.webhook_event(event_id), b"done", ex=DONE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            raise DeliveriesUnavailable(type(exc).__name__) from None

    async def release(self, event_id: str) -> None:
        """Give the pending mark back after a failure, so the retry applies the event (if this fails too, the mark
        lapses within a minute)."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(keys.webhook_event(event_id))

    async def forget_state_of_owner(self, customer_id: str) -> bool:
        """Drop the cached snapshot of the user whose customer this is (the next read asks the upstream); False when
        no user of ours holds a card for it."""
        try:
            uid = await self._redis.get(keys.owner(customer_id))
            if uid is None:
                return False
            await self._redis.delete(keys.snapshot(uid.decode() if isinstance(uid, bytes) else uid))
        except (RedisError, OSError) as exc:
            raise DeliveriesUnavailable(type(exc).__name__) from None
        return True
