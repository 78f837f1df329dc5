"""The service's own Prometheus metrics (request metrics come from Litestar's Prometheus middleware).

Labels are bounded sets (operation names, outcomes, route templates); never a user id or an email.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.breaker import State

PREFIX = "card_onboarding"

UPSTREAM_CALLS = Counter(
    f"{PREFIX}_upstream_calls_total",
    "Calls to the card provider, by operation and outcome (ok, rejected, unavailable, timeout, bad_response, "
    "circuit_open).",
    ["operation", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    f"{PREFIX}_upstream_call_duration_seconds",
    "Latency of calls to the card provider, by operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE = Counter(
    f"{PREFIX}_state_cache_total",
    "Reads of the per-user state snapshot in Redis: hit, miss (rebuilt from the provider) or error.",
    ["result"],
)
FLIGHT_JOINS = Counter(
    f"{PREFIX}_single_flight_joins_total",
    "Requests that waited for an identical request already in flight instead of calling the provider: "
    "in this process (local) or on another replica (remote).",
    ["where"],
)
BREAKER_STATE = Gauge(
    f"{PREFIX}_circuit_state",
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
    ["dependency"],
)
REFUSALS = Counter(
    f"{PREFIX}_refusals_total",
    "Requests refused by a limit: rate_limited (quotas) or otp_attempts_exceeded (code guessing).",
    ["code", "kind"],
)

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


def breaker_changed(name: str, state: State) -> None:
    BREAKER_STATE.labels(name).set(_STATE_VALUE[state])
