"""Security limits shared by every replica: code-guessing counters and the quotas on sending emails and SMS.

Atomic counters in Redis (INCR in one script per check, fixed windows). The code-guessing counters fail CLOSED:
if Redis cannot be asked, the code is not tried (503) and the upstream is not called, because a guessing limit
that lapses whenever Redis does would be no limit. The quotas fail OPEN (logged): they bound cost and spam, and
refusing every new user during a Redis outage would cost more than a few unmetered emails.


Keys: `otp:<kind>:<issue>`, `otp:<kind>:hour` and the `quota:` keys in service.storage.keys.

A code attempt is counted before the upstream is asked (so parallel guesses cannot slip past the limit), never
once the limit is reached (a refused try costs nothing), and refunded when the answer was not a wrong or dead code
(right, upstream down): only wrong guesses use it up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, NoReturn

import msgspec
import structlog
from redis.exceptions import NoScriptError, RedisError

from service.ops import metrics
from service.ops.breaker import CircuitBreaker
from service.storage import keys as layout
from service.storage import unit

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 3600
CODE_ATTEMPTS_PER_ISSUE = 5
CODE_ATTEMPTS_PER_HOUR = 10


class Quotas(msgspec.Struct, frozen=True, kw_only=True):
    """How many emails (starts) and SMS (phone requests) one user, and one client address, may ask for per hour.

    Each start can send an email and each phone request an SMS: both cost money and can be used to spam.

    Per user (the token's `sub`, issued by our identity provider) is the real control: a person who mistypes an
    address or misses a code needs a handful, not more.

    Per address is only a backstop against one machine scripting many accounts, and must not be a per-person
    limit: one IPv4 address is often a mobile carrier's CGNAT egress, shared by hundreds or thousands of
    subscribers at once, or an office, campus or hotel NAT, and a campaign can bring many of them to the flow
    in the same hour. 600 starts an hour (10 a minute) lets a shared address onboard that many people, while one
    address still cannot make us send more than 300 SMS an hour. IPv6 clients are counted per /64 (one
    subscriber). 0 turns a per-address quota off (say, when the gateway limits by address itself). Behind a
    gateway, set TRUSTED_PROXIES, or every client counts as the gateway's one address.
    """

    start_per_user: int = 10
    start_per_address: int = 600
    phone_per_user: int = 5
    phone_per_address: int = 300

    def of(self, action: str) -> tuple[int, int]:
        """(per user, per client address) for an action, "start" or "phone"."""
        if action == "start":
            return self.start_per_user, self.start_per_address
        return self.phone_per_user, self.phone_per_address


DEFAULT_QUOTAS = Quotas()

# Count one more against each key (a new key starts its window with SET NX, so its first count costs no EXPIRE);
# if one goes past its limit, take the counts back, so a refused try costs nothing, and report each key's count
# and seconds left. Reports 1 and the counts when counted (no TTLs: only a refusal needs them).
_COUNT = """
local counted = 0
for i, key in ipairs(KEYS) do
  local n = 1
  if not redis.call('set', key, '1', 'EX', ARGV[1], 'NX') then n = redis.call('incr', key) end
  counted = i
  if n > tonumber(ARGV[i + 1]) then
    for j = 1, counted do redis.call('decr', KEYS[j]) end
    local out = {0}
    for _, k in ipairs(KEYS) do
      out[#out + 1] = tonumber(redis.call('get', k) or '0')
      out[#out + 1] = redis.call('ttl', k)
    end
    return out
  end
end
local out = {1}
for _, key in ipairs(KEYS) do
  out[#out + 1] = 0
  out[#out + 1] = 0
end
return out
"""

# Give back one count, but never below zero and never to a key that has already expired (that would make a key
# without a TTL, and an extra try in the next window). One DECR when there is something to give back.
_REFUND = """
for _, key in ipairs(KEYS) do
  if redis.call('decr', key) < 0 then
    if redis.call('pttl', key) < 0 then redis.call('del', key) else redis.call('incr', key) end
  end
end
return 1
"""


class LimitsUnavailable(Exception):
    """The counters cannot be read: refuse (fail closed) rather than let the request through unchecked."""


class LimitExceeded(Exception):
    def __init__(self, code: str, kind: str, retry_after: float, limit: int, *, hourly: bool = True) -> None:
        super().__init__(code)
        self.code = code
        self.kind = kind
        self.retry_after = retry_after
        self.limit = limit
        # False when only one issued code's tries are used up (a new code helps), True for an hourly limit.
        self.hourly = hourly


class Limits:
    def __init__(self, redis: Any, breaker: CircuitBreaker, quotas: Quotas = DEFAULT_QUOTAS) -> None:
        self._redis = redis
        self._breaker = breaker
        self._quotas = quotas
        self._script: Any = None
        self._refund: Any = None

    async def code_attempt(self, uid: str, kind: str, issue: str) -> None:
        """Count one attempt at a `kind` ("email"/"sms") code; raise LimitExceeded past either limit."""
        keys = [layout.code_tries(uid, kind, issue), layout.code_tries_this_hour(uid, kind)]
        counted, [(_, issue_ttl), (per_hour, hour_ttl)] = await self._count(
            keys, [CODE_ATTEMPTS_PER_ISSUE, CODE_ATTEMPTS_PER_HOUR]
        )
        if not counted:
            metrics.REFUSALS.labels("otp_attempts_exceeded", kind).inc()
            log.warning("code_attempts_exceeded", kind=kind)
            hourly = per_hour >= CODE_ATTEMPTS_PER_HOUR
            wait = hour_ttl if hourly else issue_ttl
            raise LimitExceeded(
                "otp_attempts_exceeded",
                kind,
                wait,
                CODE_ATTEMPTS_PER_HOUR if hourly else CODE_ATTEMPTS_PER_ISSUE,
                hourly=hourly,
            )

    async def refund_code_attempt(self, uid: str, kind: str, issue: str) -> None:
        """The attempt was not a wrong guess: give it back (best effort; a lost refund only errs on the safe side).
        Inside a leased flight the refund goes with the lease's release (service.storage.unit)."""
        tries = [layout.code_tries(uid, kind, issue), layout.code_tries_this_hour(uid, kind)]
        pending = unit.current(uid)
        if pending is not None:
            pending.refunds += tries
            return
        await self._give_back(tries)

    async def _give_back(self, tries: list[str]) -> None:
        if self._refund is None:
            self._refund = self._redis.register_script(_REFUND)
        try:
            await self._refund(keys=tries)
        except (RedisError, OSError) as exc:
            log.warning("redis_refund_failed", error=type(exc).__name__)

    async def quota(self, uid: str, client_ip: str | None, action: str) -> None:
        """Count one `action` ("start"/"phone") for the user and for the client address; raise past a quota."""
        per_user, per_address = self._quotas.of(action)
        user_key = layout.user_quota(uid, action)
        try:
            if not client_ip or per_address <= 0:
                (counted, [(_, ttl)]), address = await self._count([user_key], [per_user]), None
            else:
                # One script per key (on a Redis Cluster a user's and an address's keys live in different slots),
                # both in one round trip.
                address_key = layout.address_quota(client_ip, action)
                (counted, [(_, ttl)]), address = await self._count_both(
                    (user_key, per_user), (address_key, per_address)
                )
                if not counted and address is not None and address[0]:
                    await self._give_back([address_key])  # as if asked one after the other: refused, not counted
        except LimitsUnavailable:
            log.warning("quota_unchecked", action=action)
            return
        limit = per_user
        if counted and address is not None and not address[0]:
            counted, ttl, limit = False, address[1], per_address
        if not counted:
            metrics.REFUSALS.labels("rate_limited", action).inc()
            log.warning("quota_exceeded", action=action)
            raise LimitExceeded("rate_limited", action, ttl, limit)

    async def _count_both(
        self, first: tuple[str, int], second: tuple[str, int]
    ) -> tuple[tuple[bool, list[tuple[int, int]]], tuple[bool, int] | None]:
        """Two one-key counts in one pipeline; the second as (counted, seconds left), None if it failed alone."""
        if self._breaker.allow() is not None:
            raise LimitsUnavailable("redis is unavailable")
        if self._script is None:
            self._script = self._redis.register_script(_COUNT)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, limit in (first, second):
                pipe.execute_command("EVALSHA", self._script.sha, 1, key, WINDOW_SECONDS, limit)
            replies = await pipe.execute(raise_on_error=False)
            if any(isinstance(r, NoScriptError) for r in replies):
                # Not loaded on this server yet: once one at a time (redis-py loads it), then pipelined again.
                return await self._count([first[0]], [first[1]]), _one(await self._count([second[0]], [second[1]]))
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        except BaseException:
            self._breaker.release()  # cancelled: this call may have held the breaker's one probe
            raise
        if isinstance(replies[0], Exception):
            self._redis_failed(replies[0])
        self._breaker.success()
        second_reply = None if isinstance(replies[1], Exception) else _one(_parsed(replies[1]))
        return _parsed(replies[0]), second_reply

    async def _count(self, keys: Sequence[str], limits: Sequence[int]) -> tuple[bool, list[tuple[int, int]]]:
        if self._breaker.allow() is not None:
            raise LimitsUnavailable("redis is unavailable")
        if self._script is None:
            self._script = self._redis.register_script(_COUNT)
        try:
            raw = await self._script(keys=list(keys), args=[WINDOW_SECONDS, *limits])
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        except BaseException:
            self._breaker.release()  # cancelled: this call may have held the breaker's one probe
            raise
        self._breaker.success()
        return _parsed(raw)

    def _redis_failed(self, exc: BaseException) -> NoReturn:
        self._breaker.failure()
        log.warning("redis_limits_failed", error=type(exc).__name__)
        raise LimitsUnavailable("redis is unavailable") from None


def _parsed(raw: Sequence[Any]) -> tuple[bool, list[tuple[int, int]]]:
    values = [int(v) for v in raw]
    return bool(values[0]), [(values[i], max(values[i + 1], 1)) for i in range(1, len(values), 2)]


def _one(count: tuple[bool, list[tuple[int, int]]]) -> tuple[bool, int]:
    counted, [(_, ttl)] = count
    return counted, ttl


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Any]) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy; then the nearest untrusted hop of
    X-Forwarded-For (read right to left, so a client cannot pick its own address by sending the header)."""
    hops = [peer] if peer else []
    if forwarded_for and peer and _trusted(peer, trusted):
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()] + hops
    chosen = None
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage in the chain: trust ends at the last proxy that wrote a real address
        # One IPv6 subscriber usually holds a whole /64: count it as one address, or the quota is trivially bypassed.
        chosen = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
        if not any(ip in network for network in trusted):
            break
    return chosen


def _trusted(address: str, trusted: Sequence[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
