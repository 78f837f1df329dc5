"""Single flight: concurrent identical requests of one user share one run and its answer, on one replica or many.

In this process, identical requests (same user, same flight id) await one task; a different request of the same user
waits for the running one to finish first. Across replicas, a short Redis lease per user elects one runner; the
others wait on a wake-up list (BLPOP, so they wake within a millisecond of the release rather than polling) and then
read the runner's outcome, which it publishes under its lease token.

The lease only saves upstream calls. It can expire under a paused process and Redis can lose it on failover, so
correctness still rests on the upstream's de-duplication by external_customer_id and on reconciling by reading.
Every Redis step fails open: if Redis is slow or down, each request simply runs by itself.

Keys: `lease`, `outcome:<token>` and `wake:<token>` in service.storage.keys.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from redis.exceptions import RedisError

from service.onboarding.actions import NextAction, OnboardingState
from service.onboarding.refusals import Refusal
from service.ops import metrics
from service.ops.breaker import CircuitBreaker
from service.storage import keys

log = structlog.get_logger(__name__)

OUTCOME_TTL_MS = 10_000
_UNLEASED = "\x00unleased"
WAKE_POLL_SECONDS = 0.25  # below the Redis socket timeout, so a blocking wait never looks like a dead Redis

# Take the lease, or say who holds it (one round trip, atomic, and no MULTI: redis-py's cluster client runs
# transactions on a throwaway event loop).
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return redis.call('get', KEYS[1]) or ''
"""

# Release the lease only if it is still ours, publish the outcome, and wake whoever waits on this token.
_FINISH = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
if ARGV[2] ~= '' then redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('rpush', KEYS[3], '1')
redis.call('pexpire', KEYS[3], ARGV[3])
return 1
"""


class Outcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a run ended with, as followers on other replicas need it to answer the same: an answer or a refusal."""

    state: OnboardingState | None = None
    code: str | None = None
    action: NextAction | None = None
    retry_after: float | None = None
    headers: dict[str, str] | None = None

    @classmethod
    def of(cls, result: OnboardingState | Refusal) -> Outcome:
        if isinstance(result, OnboardingState):
            return cls(state=result)
        return cls(code=result.code, action=result.action, retry_after=result.retry_after, headers=result.headers)

    def unwrap(self) -> OnboardingState:
        if self.state is not None:
            return self.state
        assert self.code is not None and self.action is not None
        raise Refusal(self.code, self.action, retry_after=self.retry_after, headers=self.headers)


_encode = msgspec.msgpack.Encoder().encode
_decode_outcome = msgspec.msgpack.Decoder(Outcome).decode


class _Flight:
    __slots__ = ("id", "task")

    def __init__(self, flight_id: str, task: asyncio.Future[OnboardingState]) -> None:
        self.id = flight_id
        self.task = task


class Flights:
    def __init__(self, redis: Any, breaker: CircuitBreaker, *, deadline_seconds: float) -> None:
        self._redis = redis
        self._breaker = breaker
        self._deadline = deadline_seconds
        self._lease_ms = int((deadline_seconds + 1.0) * 1000)
        self._local: dict[str, _Flight] = {}
        self._acquire_script: Any = None
        self._finish_script: Any = None

    async def run(
        self,
        uid: str,
        flight_id: str,
        work: Callable[[], Awaitable[OnboardingState]],
        *,
        on_deadline: Callable[[], Refusal],
    ) -> OnboardingState:
        """Run `work` once for all identical concurrent calls, within the request deadline (past it, the refusal
        `on_deadline` makes is the answer, waiting in line included)."""
        deadline_at = asyncio.get_running_loop().time() + self._deadline  # counts from here, waiting included
        try:
            async with asyncio.timeout_at(deadline_at):
                while (running := self._local.get(uid)) is not None:
                    if running.id == flight_id:
                        metrics.FLIGHT_JOINS.labels("local").inc()
                        return await asyncio.shield(running.task)
                    await asyncio.wait([running.task])  # another step of this user: one at a time
        except TimeoutError:
            raise on_deadline() from None
        task = asyncio.ensure_future(self._lead(uid, flight_id, work, deadline_at, on_deadline))
        flight = self._local[uid] = _Flight(flight_id, task)

        def done(finished: asyncio.Future[OnboardingState]) -> None:
            if self._local.get(uid) is flight:
                del self._local[uid]
            if not finished.cancelled():
                finished.exception()  # retrieved here, so a caller that went away leaves no warning behind

        task.add_done_callback(done)
        # shield: a caller that disconnects must not cancel a run others wait for (or leave a half-made effect).
        return await asyncio.shield(task)

    async def _lead(
        self,
        uid: str,
        flight_id: str,
        work: Callable[[], Awaitable[OnboardingState]],
        deadline_at: float,
        on_deadline: Callable[[], Refusal],
    ) -> OnboardingState:
        token = secrets.token_hex(8)
        holding = f"{token}|{flight_id}"
        acquired = False
        result: OnboardingState | Refusal
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    holder = await self._acquire(uid, token, holding)
                    if holder is None or holder is _UNLEASED:
                        acquired = holder is None  # _UNLEASED: Redis unusable, run without a lease
                        break
                    outcome = await self._follow(uid, holder, flight_id)
                    if outcome is not None:
                        metrics.FLIGHT_JOINS.labels("remote").inc()
                        return outcome.unwrap()
                result = await work()
        except TimeoutError:
            # The deadline passed (a create cut off by it was marked unsettled by the shell, and is reconciled first).
            result = on_deadline()
        except Refusal as exc:
            result = exc
        except BaseException:
            if acquired:
                await asyncio.shield(self._finish(uid, token, holding, None))
            raise
        if acquired:
            await self._finish(uid, token, holding, Outcome.of(result))
        if isinstance(result, BaseException):
            raise result
        return result

    # --- Redis, failing open ------------------------------------------------------------------

    async def _acquire(self, uid: str, token: str, holding: str) -> str | None:
        """None when the lease is ours, _UNLEASED when Redis cannot be asked (run anyway), else the holder."""
        if self._breaker.allow() is not None:
            return _UNLEASED
        if self._acquire_script is None:
            self._acquire_script = self._redis.register_script(_ACQUIRE)
        try:
            holder = await self._acquire_script(keys=[keys.lease(uid)], args=[holding, self._lease_ms])
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return _UNLEASED
        except BaseException:
            # Cut off (the deadline): the SET may have landed, so give the lease back if it is ours.
            self._breaker.release()
            await asyncio.shield(self._finish(uid, token, holding, None))
            raise
        self._breaker.success()
        holder = holder.decode() if isinstance(holder, bytes) else str(holder or "")
        return holder or None

    async def _follow(self, uid: str, holder: str, flight_id: str) -> Outcome | None:
        """Wait until `holder` finishes. Its outcome if it ran the same flight, else None (then try to lead)."""
        token, _, held_flight = holder.partition("|")
        wake = keys.wake(uid, token)
        outcome_key = keys.outcome(uid, token)
        lease = keys.lease(uid)
        while True:
            try:
                woke = await self._redis.blpop([wake], timeout=WAKE_POLL_SECONDS)
                pipe = self._redis.pipeline(transaction=False)
                if woke is not None:
                    pipe.rpush(wake, b"1")  # pass the wake-up on to the next follower
                    pipe.pexpire(wake, OUTCOME_TTL_MS)  # BLPOP emptied the list and Redis dropped its TTL with it
                pipe.get(outcome_key)
                pipe.get(lease)
                *_, raw, current = await pipe.execute()
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                return None
            if raw is not None:
                if held_flight != flight_id:
                    return None
                try:
                    return _decode_outcome(raw)
                except msgspec.DecodeError:
                    return None
            current_holder = current.decode() if isinstance(current, bytes) else current
            if current_holder != holder:
                return None  # released without an outcome, or expired: compete again

    async def _finish(self, uid: str, token: str, holding: str, outcome: Outcome | None) -> None:
        # Tried even while the breaker is open: a lease left behind would keep other replicas waiting for it.
        if self._finish_script is None:
            self._finish_script = self._redis.register_script(_FINISH)
        try:
            await self._finish_script(
                keys=[keys.lease(uid), keys.outcome(uid, token), keys.wake(uid, token)],
                args=[holding, b"" if outcome is None else _encode(outcome), OUTCOME_TTL_MS],
            )
        except (RedisError, OSError) as exc:
            # The lease expires by itself; followers on other replicas then run on their own.
            self._redis_failed(exc)
        else:
            self._breaker.success()

    def _redis_failed(self, exc: BaseException) -> None:
        self._breaker.failure()
        log.warning("redis_lease_failed", error=type(exc).__name__)
