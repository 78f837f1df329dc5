"""Per-user onboarding state in Redis, and what happens when Redis misbehaves (the keys: service.storage.keys).

Policy. The snapshot is a cache of facts the upstream owns, so it fails open: a Redis error or timeout on a read is
a miss (the upstream is asked), and on a write it is logged and the answer still goes out. After a few failures in
a row a circuit breaker skips Redis for a moment, so a stalled Redis costs each request nothing rather than a socket
timeout per command; it probes again by itself. Nothing here is a security control; the code-guessing counters
(service/storage/limits.py) share this breaker but fail closed: while it is open they refuse.

The `owner` key lets a card webhook (which names only the upstream customer) find the user whose snapshot to drop;
it is written once the user has a card, on its own (another hash slot), with the snapshot's TTL.
The single-flight leases (service/storage/flights.py) use the same client and breaker. Inside a leased flight the
snapshot is read by the lease script and written by the release script (service/storage/unit.py), so a flight costs
two round trips for its lease and its snapshot together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import msgspec
import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.onboarding.snapshot import Snapshot
from service.ops import metrics
from service.ops.breaker import CircuitBreaker
from service.storage import keys, unit
from service.storage.connection import ScopedWriteConnection

SNAPSHOT_TTL_SECONDS = 30 * 24 * 3600
# An empty snapshot only saves the lookup for a user who has not started; keep it short.
EMPTY_SNAPSHOT_TTL_SECONDS = 600

log = structlog.get_logger(__name__)
_encode = msgspec.msgpack.Encoder().encode
_decode_snapshot = msgspec.msgpack.Decoder(Snapshot).decode


class RedisLike(Protocol):
    """The part of redis-py's asyncio client the store uses (a real Redis, a cluster or fakeredis)."""

    async def get(self, name: str) -> Any: ...
    async def delete(self, *names: str) -> Any: ...
    async def blpop(self, keys: list[str], timeout: float = 0) -> Any: ...  # noqa: ASYNC109 (redis-py's own signature)
    def pipeline(self, transaction: bool = True) -> Any: ...
    def register_script(self, script: str) -> Any: ...


class StateStore:
    def __init__(self, redis: RedisLike, *, breaker: CircuitBreaker | None = None) -> None:
        self.redis = redis
        self.breaker = breaker or CircuitBreaker(
            "redis",
            threshold=3,
            cooldown=1.0,
            max_cooldown=5.0,
            on_change=metrics.breaker_changed,
            on_refusal=metrics.breaker_refused,
        )

    async def load(self, uid: str) -> Snapshot | None:
        """The cached snapshot, in one round trip; None when missing, unreadable or Redis fails."""
        pending = unit.current(uid)
        if pending is not None:
            if pending.snapshot is not None:
                return pending.snapshot  # saved earlier in this flight, not yet written
            if not pending.read:
                pending.read = True
                return decoded(pending.fetched)  # read by the lease script a moment ago
        if self.breaker.allow() is not None:
            metrics.CACHE.labels("error").inc()
            return None
        try:
            raw = await self.redis.get(keys.snapshot(uid))
        except (RedisError, OSError) as exc:
            self._failed("redis_read_failed", exc)
            metrics.CACHE.labels("error").inc()
            return None
        except BaseException:
            self.breaker.release()  # cancelled: this call may have held the breaker's one probe
            raise
        self.breaker.success()
        return decoded(raw)

    async def save(self, uid: str, snapshot: Snapshot) -> None:
        pending = unit.current(uid)
        if pending is not None:
            pending.snapshot = snapshot  # written with the lease's release
            return
        if self.breaker.allow() is not None:
            return
        value, ttl = record(snapshot)
        with self._guard("redis_write_failed"):
            # Not a MULTI: the writes are idempotent, and redis-py's cluster client runs transactions on a
            # throwaway event loop. One round trip (a cluster client splits it by node).
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(keys.snapshot(uid), value, ex=ttl)
            if (owner := owner_key(snapshot)) is not None:
                pipe.set(owner, uid, ex=SNAPSHOT_TTL_SECONDS)
            await pipe.execute()

    async def forget(self, uid: str) -> None:
        """Drop the cached snapshot (kept: the durable card id) so the next read asks the upstream."""
        pending = unit.current(uid)
        if pending is not None:
            # At once, not at the release: a reader must not keep answering from what is known to be stale.
            pending.snapshot = None
            pending.read = True
        if self.breaker.allow() is not None:
            return
        with self._guard("redis_write_failed"):
            await self.redis.delete(keys.snapshot(uid))

    @contextlib.contextmanager
    def _guard(self, event: str) -> Iterator[None]:
        """Fail open: a Redis error is logged and counted by the breaker; a cancelled call frees its probe slot."""
        try:
            yield
        except (RedisError, OSError) as exc:
            self._failed(event, exc)
        except BaseException:
            self.breaker.release()
            raise
        else:
            self.breaker.success()

    def _failed(self, event: str, exc: BaseException) -> None:
        self.breaker.failure()
        log.warning(event, error=type(exc).__name__)


def decoded(raw: bytes | None) -> Snapshot | None:
    """A stored snapshot, counted as a cache hit or miss; None when missing or unreadable."""
    if raw is None:
        metrics.CACHE.labels("miss").inc()
        return None
    try:
        snapshot = _decode_snapshot(raw)
    except msgspec.DecodeError:
        # Written by an incompatible version: a miss, rebuilt from the upstream.
        metrics.CACHE.labels("miss").inc()
        return None
    metrics.CACHE.labels("hit").inc()
    return snapshot


def record(snapshot: Snapshot) -> tuple[bytes, int]:
    """A snapshot as stored, and its TTL in seconds."""
    return _encode(snapshot), SNAPSHOT_TTL_SECONDS if snapshot.customer_id else EMPTY_SNAPSHOT_TTL_SECONDS


def owner_key(snapshot: Snapshot) -> str | None:
    """The card webhooks' way back to the user, once there is a card (written beside the snapshot, 30 days)."""
    return keys.owner(snapshot.customer_id) if snapshot.customer_id and snapshot.card is not None else None


def connect(url: str, *, cluster: bool = False) -> RedisLike:
    """A client for REDIS_URL with short timeouts: a slow Redis must cost milliseconds, not the request."""
    if url.startswith("memory://"):
        import fakeredis

        return fakeredis.FakeAsyncRedis()
    options: dict[str, Any] = {
        "socket_timeout": 0.5,
        "socket_connect_timeout": 0.5,
        "health_check_interval": 15,
        # redis-py's default retries ten times with back-off; one immediate retry on a broken connection is enough
        # to get past a restarted Redis, and a timeout is never retried (the breaker takes over instead).
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    if url.startswith("redis://"):
        options["connection_class"] = ScopedWriteConnection  # TLS and unix sockets keep redis-py's own
    return Redis.from_url(url, **options)  # type: ignore[return-value]
