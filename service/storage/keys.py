"""The one Redis key layout: every key the service writes, its value, its TTL and what happens when it is missing.

All of one user's keys carry the hash tag `{u:<uid>}`, so on a Redis Cluster they live in one slot and every
multi-key command or script works (REDIS_CLUSTER=true). `<uid>` is a digest of the token's `sub`
(service.onboarding.user.User.uid); no key holds an email, a code or a Yativo id in the clear.

| key                                   | value                               | TTL           | policy when Redis fails      |
|---------------------------------------|-------------------------------------|---------------|------------------------------|
| `bff:{u:<uid>}:snap`                  | Snapshot (msgpack), incl. the upstream customer id | 30 days (10 min before a customer exists) | open: rebuilt from the upstream |
| `bff:{u:<uid>}:lease`                 | `<token>|<flight id>`               | deadline + 1 s | open: each request runs alone |
| `bff:{u:<uid>}:waiters`              | `1`: a follower waits for the lease  | deadline + 1 s | open                          |
| `bff:{u:<uid>}:outcome:<token>`       | a flight's outcome (msgpack)        | 10 s          | open                          |
| `bff:{u:<uid>}:wake:<token>`          | wake-up tokens for BLPOP            | 10 s          | open                          |
| `bff:{u:<uid>}:otp:<kind>:<issue>`    | wrong tries at one issued code      | 1 h           | CLOSED: the code is not tried |
| `bff:{u:<uid>}:otp:<kind>:hour`       | wrong tries of this user this hour  | 1 h (window)  | CLOSED                        |
| `bff:{u:<uid>}:quota:<action>`        | emails or SMS this user asked for   | 1 h (window)  | open (logged)                 |
| `bff:{ip:<addr>}:quota:<action>`      | the same, per client address        | 1 h (window)  | open (logged)                 |
| `bff:{y:<digest of customer id>}:owner` | `<uid>`                           | 30 days       | card webhooks for it are ignored |
| `bff:wh:<digest of event id>`         | `pending` / `done`                  | 60 s / 7 days | CLOSED: 503, Yativo retries   |
"""

from __future__ import annotations

import hashlib


def _user(uid: str) -> str:
    return f"bff:{{u:{uid}}}"


def snapshot(uid: str) -> str:
    return f"{_user(uid)}:snap"


def lease(uid: str) -> str:
    return f"{_user(uid)}:lease"


def waiters(uid: str) -> str:
    return f"{_user(uid)}:waiters"


def outcome(uid: str, token: str) -> str:
    return f"{_user(uid)}:outcome:{token}"


def wake(uid: str, token: str) -> str:
    return f"{_user(uid)}:wake:{token}"


def code_tries(uid: str, kind: str, issue: str) -> str:
    return f"{_user(uid)}:otp:{kind}:{issue}"


def code_tries_this_hour(uid: str, kind: str) -> str:
    return f"{_user(uid)}:otp:{kind}:hour"


def user_quota(uid: str, action: str) -> str:
    return f"{_user(uid)}:quota:{action}"


def address_quota(address: str, action: str) -> str:
    return f"bff:{{ip:{address}}}:quota:{action}"


def owner(customer_id: str) -> str:
    return f"bff:{{y:{hashlib.sha256(customer_id.encode()).hexdigest()[:32]}}}:owner"


def webhook_event(event_id: str) -> str:
    return "bff:wh:" + hashlib.sha256(event_id.encode()).hexdigest()[:32]
