"""Single flight: concurrent identical requests of one user share one run and its answer, on one replica or many.

In this process, identical requests (same user, same flight id) await one task; a different request of the same user
waits for the running one to finish first. Across replicas, a short Redis lease per user elects one runner; the
others wait on a wake-up list (BLPOP, so they wake within a millisecond of the release rather than polling) and then
read the runner's outcome, which it publishes under its lease token.

The lease only saves upstream calls. It can expire under a paused process and Redis can lose it on failover, so
correctness still rests on the upstream's de-duplication by external_customer_id and on reconciling by reading.
Every Redis step fails open: if Redis is slow or down, each request simply runs by itself.

The leader's Redis work is two round trips (service.storage.unit): one script takes the lease and reads the
user's snapshot; one saves the snapshot the run ended with, gives back the code tries it refunded, releases the lease
and, only if someone waits (a follower leaves a `waiters` note), publishes the outcome and wakes them.

Keys: `lease`, `waiters`, `outcome:<token>` and `wake:<token>` in service.storage.keys; every key a script touches is one
user's, in the user's hash slot.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from redis.exceptions import NoScriptError, RedisError

from service.onboarding.actions import NextAction, OnboardingState
from service.onboarding.refusals import Refusal
from service.ops import metrics
from service.ops.breaker import CircuitBreaker
from service.storage import keys, unit
from service.storage.store import SNAPSHOT_TTL_SECONDS, owner_key, record

log = structlog.get_logger(__name__)

OUTCOME_TTL_MS = 10_000
_UNLEASED = "\x00unleased"
WAKE_POLL_SECONDS = 0.25  # below the Redis socket timeout, so a blocking wait never looks like a dead Redis

# Take the lease and read the snapshot, or say who holds it and note that someone waits (one round trip, atomic, and
# no MULTI: redis-py's cluster client runs transactions on a throwaway event loop).
_BEGIN = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'', redis.call('get', KEYS[2])}
end
local holder = redis.call('get', KEYS[1])
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'', redis.call('get', KEYS[2])}
end
redis.call('set', KEYS[3], '1', 'PX', ARGV[2])
return {holder}
"""

# Save the snapshot and refund the code tries (never below zero, never to an expired key), release the lease and
# the waiters' note, and unless the lease was ours and nobody waited, publish the outcome and wake whoever waits on
# this token. ARGV[6] '1': check that the lease is still ours first (held long enough that it may have expired);
# otherwise it cannot have: it outlives the request deadline by a second, and the run ends at that deadline.
_FINISH = """
if ARGV[4] ~= '' then redis.call('set', KEYS[4], ARGV[4], 'EX', ARGV[5]) end
for i = 6, #KEYS do
  if redis.call('decr', KEYS[i]) < 0 then
    if redis.call('pttl', KEYS[i]) < 0 then redis.call('del', KEYS[i]) else redis.call('incr', KEYS[i]) end
  end
end
local released = 0
if ARGV[6] ~= '1' or redis.call('get', KEYS[1]) == ARGV[1] then released = redis.call('del', KEYS[1], KEYS[5]) end
if released == 1 then return 1 end
if ARGV[2] ~= '' then redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('rpush', KEYS[3], '1')
redis.call('pexpire', KEYS[3], ARGV[3])
return 2
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
        self._begin_script: Any = None
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
        held: unit.Unit | None = None
        result: OnboardingState | Refusal
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    holder, held = await self._acquire(uid, token, holding)
                    if holder is None or holder is _UNLEASED:
                        break  # _UNLEASED: Redis unusable, run without a lease (and read and write directly)
                    outcome = await self._follow(uid, holder, flight_id)
                    if outcome is not None:
                        metrics.FLIGHT_JOINS.labels("remote").inc()
                        return outcome.unwrap()
                if held is not None:
                    unit.begin(held)
                result = await work()
        except TimeoutError:
            # The deadline passed (a create cut off by it was marked unsettled by the shell, and is reconciled first).
            result = on_deadline()
        except Refusal as exc:
            result = exc
        except BaseException:
            if held is not None:
                unit.end()
                await asyncio.shield(self._finish(uid, token, holding, None, held))
            raise
        if held is not None:
            unit.end()
            await self._finish(uid, token, holding, Outcome.of(result), held)
        if isinstance(result, BaseException):
            raise result
        return result

    # --- Redis, failing open ------------------------------------------------------------------

    async def _acquire(self, uid: str, token: str, holding: str) -> tuple[str | None, unit.Unit | None]:
        """(None, the flight's unit) when the lease is ours, (_UNLEASED, None) when Redis cannot be asked (run
        anyway), else (the holder, None)."""
        if self._breaker.allow() is not None:
            return _UNLEASED, None
        if self._begin_script is None:
            self._begin_script = self._redis.register_script(_BEGIN)
        try:
            taken_at = asyncio.get_running_loop().time()  # before the SET: Redis counts the lease from later
            reply = await self._begin_script(
                keys=[keys.lease(uid), keys.snapshot(uid), keys.waiters(uid)], args=[holding, self._lease_ms]
            )
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return _UNLEASED, None
        except BaseException:
            # Cut off (the deadline): the SET may have landed, so give the lease back if it is ours.
            self._breaker.release()
            await asyncio.shield(self._finish(uid, token, holding, None, None))
            raise
        self._breaker.success()
        holder = _text(reply[0])
        if holder:
            return holder, None
        return None, unit.Unit(uid, reply[1] if len(reply) > 1 else None, taken_at)

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
            if _text(current) != holder:
                return None  # released without an outcome, or expired: compete again

    async def _finish(
        self, uid: str, token: str, holding: str, outcome: Outcome | None, held: unit.Unit | None
    ) -> None:
        # Tried even while the breaker is open: a lease left behind would keep other replicas waiting for it.
        if self._finish_script is None:
            self._finish_script = self._redis.register_script(_FINISH)
        snapshot = held.snapshot if held is not None else None
        value, ttl = record(snapshot) if snapshot is not None else (b"", 0)
        script_keys = [
            keys.lease(uid),
            keys.outcome(uid, token),
            keys.wake(uid, token),
            keys.snapshot(uid),
            keys.waiters(uid),
            *(held.refunds if held is not None else ()),
        ]
        # Held for less than the deadline: the lease (deadline + 1 s) is still ours, no need to read it first.
        careful = held is None or asyncio.get_running_loop().time() - held.taken_at >= self._deadline
        args = [holding, b"" if outcome is None else _encode(outcome), OUTCOME_TTL_MS, value, ttl, int(careful)]
        owner = owner_key(snapshot) if snapshot is not None else None
        try:
            if owner is None:
                await self._finish_script(keys=script_keys, args=args)
            else:
                # The owner key lives in another hash slot: the same round trip, not the same script.
                pipe = self._redis.pipeline(transaction=False)
                pipe.execute_command("EVALSHA", self._finish_script.sha, len(script_keys), *script_keys, *args)
                pipe.set(owner, uid, ex=SNAPSHOT_TTL_SECONDS)
                finished, owned = await pipe.execute(raise_on_error=False)
                if isinstance(finished, NoScriptError):
                    await self._finish_script(keys=script_keys, args=args)  # loads it, then runs it
                for answer in (finished, owned):
                    if isinstance(answer, Exception) and not isinstance(answer, NoScriptError):
                        raise answer
        except (RedisError, OSError) as exc:
            # The lease expires by itself; followers on other replicas then run on their own.
            self._redis_failed(exc, "redis_write_failed" if snapshot is not None else "redis_lease_failed")
        else:
            self._breaker.success()

    def _redis_failed(self, exc: BaseException, event: str = "redis_lease_failed") -> None:
        self._breaker.failure()
        log.warning(event, error=type(exc).__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
