"""Security limits shared by every replica: code-guessing counters and the quotas on sending emails and SMS.

Atomic counters in Redis (INCR in one script per check, fixed windows). The code-guessing counters fail CLOSED:
if Redis cannot be asked, the code is not tried (503) and the upstream is not called, because a guessing limit
that lapses whenever Redis does would be no limit. The quotas fail OPEN (logged): they bound cost and spam, and
refusing every new user during a Redis outage would cost more than a few unmetered emails.

| key                                   | counts                                 | TTL            |
|---------------------------------------|----------------------------------------|----------------|
| `bff:{u:<uid>}:otp:<kind>:<issue>`    | code attempts against one issued code  | 1 h            |
| `bff:{u:<uid>}:otp:<kind>:hour`       | code attempts of this user, this hour  | 1 h (window)   |
| `bff:{u:<uid>}:quota:<action>`        | emails or SMS this user asked for      | 1 h (window)   |
| `bff:{ip:<addr>}:quota:<action>`      | the same, per client address           | 1 h (window)   |

A code attempt is counted before the upstream is asked (so parallel guesses cannot slip past the limit) and
refunded when the answer was not "wrong code" (right, expired, upstream down): only wrong guesses use it up.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from typing import Any

import structlog
from redis.exceptions import RedisError

from service import metrics
from service.breaker import CircuitBreaker

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 3600
CODE_ATTEMPTS_PER_ISSUE = 5
CODE_ATTEMPTS_PER_HOUR = 10
# Each start can send an email and each phone request an SMS: both cost money and can be used to spam.
QUOTAS = {"start": (10, 60), "phone": (5, 30)}  # action -> (per user, per client address) per hour

# Count one more against each key; give each key its window on first use; report counts and seconds left.
_COUNT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('incr', key)
  if n == 1 then redis.call('expire', key, ARGV[1]) end
  out[#out + 1] = n
  out[#out + 1] = redis.call('ttl', key)
end
return out
"""


class LimitsUnavailable(Exception):
    """The counters cannot be read: refuse (fail closed) rather than let the request through unchecked."""


class LimitExceeded(Exception):
    def __init__(self, code: str, kind: str, retry_after: float, limit: int) -> None:
        super().__init__(code)
        self.code = code
        self.kind = kind
        self.retry_after = retry_after
        self.limit = limit


class Limits:
    def __init__(self, redis: Any, breaker: CircuitBreaker) -> None:
        self._redis = redis
        self._breaker = breaker
        self._script: Any = None

    async def code_attempt(self, uid: str, kind: str, issue: str) -> None:
        """Count one attempt at a `kind` ("email"/"sms") code; raise LimitExceeded past either limit."""
        keys = [_user_key(uid, f"otp:{kind}:{issue}"), _user_key(uid, f"otp:{kind}:hour")]
        (per_issue, issue_ttl), (per_hour, hour_ttl) = await self._count(keys)
        if per_issue > CODE_ATTEMPTS_PER_ISSUE or per_hour > CODE_ATTEMPTS_PER_HOUR:
            metrics.REFUSALS.labels("otp_attempts_exceeded", kind).inc()
            log.warning("code_attempts_exceeded", kind=kind)
            wait = hour_ttl if per_hour > CODE_ATTEMPTS_PER_HOUR else issue_ttl
            limit = CODE_ATTEMPTS_PER_HOUR if per_hour > CODE_ATTEMPTS_PER_HOUR else CODE_ATTEMPTS_PER_ISSUE
            raise LimitExceeded("otp_attempts_exceeded", kind, wait, limit)

    async def refund_code_attempt(self, uid: str, kind: str, issue: str) -> None:
        """The attempt was not a wrong guess: give it back (best effort; a lost refund only errs on the safe side)."""
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.decr(_user_key(uid, f"otp:{kind}:{issue}"))
            pipe.decr(_user_key(uid, f"otp:{kind}:hour"))
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis_refund_failed", error=type(exc).__name__)

    async def quota(self, uid: str, client_ip: str | None, action: str) -> None:
        """Count one `action` ("start"/"phone") for the user and for the client address; raise past a quota."""
        per_user, per_address = QUOTAS[action]
        keys = [_user_key(uid, f"quota:{action}")]
        if client_ip:
            keys.append(f"bff:{{ip:{client_ip}}}:quota:{action}")
        try:
            counted = await self._count_each(keys)
        except LimitsUnavailable:
            log.warning("quota_unchecked", action=action)
            return
        for (count, ttl), limit in zip(counted, (per_user, per_address), strict=False):
            if count > limit:
                metrics.REFUSALS.labels("rate_limited", action).inc()
                log.warning("quota_exceeded", action=action)
                raise LimitExceeded("rate_limited", action, ttl, limit)

    async def _count_each(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        # One script per key: on a Redis Cluster a user's and an address's keys live in different slots.
        return [(await self._count([key]))[0] for key in keys]

    async def _count(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        if self._breaker.allow() is not None:
            raise LimitsUnavailable("redis is unavailable")
        if self._script is None:
            self._script = self._redis.register_script(_COUNT)
        try:
            raw = await self._script(keys=list(keys), args=[WINDOW_SECONDS])
        except (RedisError, OSError) as exc:
            self._breaker.failure()
            log.warning("redis_limits_failed", error=type(exc).__name__)
            raise LimitsUnavailable("redis is unavailable") from None
        self._breaker.success()
        values = [int(v) for v in raw]
        return [(values[i], max(values[i + 1], 1)) for i in range(0, len(values), 2)]


def _user_key(uid: str, suffix: str) -> str:
    return f"bff:{{u:{uid}}}:{suffix}"


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Any]) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy; then the nearest untrusted hop of
    X-Forwarded-For (read right to left, so a client cannot pick its own address by sending the header)."""
    hops = [peer] if peer else []
    if forwarded_for and peer and _trusted(peer, trusted):
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()] + hops
    chosen = None
    for hop in reversed(hops):
        address = _canonical(hop)
        if address is None:
            break  # garbage in the chain: trust ends at the last proxy that wrote a real address
        chosen = address
        if not _trusted(address, trusted):
            break
    return chosen


def _trusted(address: str, trusted: Sequence[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _canonical(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def retry_after_seconds(value: float) -> int:
    return max(1, math.ceil(value))
