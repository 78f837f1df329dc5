"""Per-user onboarding state in Redis: the key layout, the TTLs, and what happens when Redis misbehaves.

Key layout. All of one user's keys carry the hash tag `{u:<uid>}`, so on a Redis Cluster they live in one slot
and every multi-key command or script works (REDIS_CLUSTER=true). `<uid>` is a digest of the token's `sub` (service.auth.User.uid).

| key                    | value                        | TTL      | when it is missing                        |
|------------------------|------------------------------|----------|-------------------------------------------|
| `bff:{u:<uid>}:card`   | the upstream yativo_card_id  | none     | found again by lookup-customer            |
| `bff:{u:<uid>}:snap`   | Snapshot (msgpack)           | 30 days  | rebuilt from the upstream (lookup + reads) |
| `bff:{u:<uid>}:snap` with no customer yet | empty Snapshot | 10 min | rebuilt from the upstream             |
| `bff:{y:<digest of yativo_card_id>}:owner` | `<uid>` | 30 days | card webhooks for this customer are ignored |

The `owner` key lets a card webhook (which names only the upstream customer) find the user whose snapshot to drop;
it is written once the user has a card, on its own (another hash slot), with the snapshot's TTL. Webhook
de-duplication keys are documented in service.webhooks; they fail closed.

Policy. Both keys are caches of facts the upstream owns, so they fail open: a Redis error or timeout on a read
is a miss (the upstream is asked), and on a write it is logged and the answer still goes out. Nothing here is a
security control; counters that must fail closed live elsewhere.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.onboarding.snapshot import Snapshot

SNAPSHOT_TTL_SECONDS = 30 * 24 * 3600
# An empty snapshot only saves the lookup for a user who has not started; keep it short.
EMPTY_SNAPSHOT_TTL_SECONDS = 600

log = structlog.get_logger(__name__)
_encode = msgspec.msgpack.Encoder().encode
_decode_snapshot = msgspec.msgpack.Decoder(Snapshot).decode


class RedisLike(Protocol):
    """The part of redis-py's asyncio client the store uses (a real Redis, a cluster or fakeredis)."""

    async def get(self, name: str) -> Any: ...
    def pipeline(self, transaction: bool = True) -> Any: ...


class Keys:
    __slots__ = ("card", "snap")

    def __init__(self, uid: str) -> None:
        tag = f"bff:{{u:{uid}}}"
        self.card = f"{tag}:card"
        self.snap = f"{tag}:snap"


def owner_key(card_id: str) -> str:
    return f"bff:{{y:{hashlib.sha256(card_id.encode()).hexdigest()[:32]}}}:owner"


class StateStore:
    def __init__(self, redis: RedisLike) -> None:
        self._redis = redis

    async def load(self, uid: str) -> Snapshot | None:
        """The cached snapshot, in one round trip; None when missing, unreadable or Redis fails."""
        try:
            raw = await self._redis.get(Keys(uid).snap)
        except (RedisError, OSError) as exc:
            log.warning("redis_read_failed", key="snap", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return _decode_snapshot(raw)
        except msgspec.DecodeError:
            # Written by an incompatible version: a miss, rebuilt from the upstream.
            return None

    async def card_id(self, uid: str) -> str | None:
        try:
            raw = await self._redis.get(Keys(uid).card)
        except (RedisError, OSError) as exc:
            log.warning("redis_read_failed", key="card", error=type(exc).__name__)
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    async def save(self, uid: str, snapshot: Snapshot) -> None:
        keys = Keys(uid)
        ttl = SNAPSHOT_TTL_SECONDS if snapshot.card_id else EMPTY_SNAPSHOT_TTL_SECONDS
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(keys.snap, _encode(snapshot), ex=ttl)
            if snapshot.card_id:
                pipe.set(keys.card, snapshot.card_id)
            await pipe.execute()
            if snapshot.card is not None and snapshot.card_id:
                await self._redis.set(owner_key(snapshot.card_id), uid, ex=SNAPSHOT_TTL_SECONDS)  # type: ignore[attr-defined]
        except (RedisError, OSError) as exc:
            log.warning("redis_write_failed", key="snap", error=type(exc).__name__)

    async def forget(self, uid: str) -> None:
        """Drop the cached snapshot (kept: the durable card id) so the next read asks the upstream."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(Keys(uid).snap)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis_write_failed", key="snap", error=type(exc).__name__)


def connect(url: str, *, cluster: bool = False) -> RedisLike:
    """A client for REDIS_URL with short timeouts: a slow Redis must cost milliseconds, not the request."""
    if url.startswith("memory://"):
        import fakeredis

        return fakeredis.FakeAsyncRedis()
    options: dict[str, Any] = {
        "socket_timeout": 0.5,
        "socket_connect_timeout": 0.5,
        "health_check_interval": 15,
        "retry_on_timeout": False,
    }
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return Redis.from_url(url, **options)  # type: ignore[return-value]
