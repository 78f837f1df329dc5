"""The service's Prometheus metrics, request metrics included (recorded by service.http.middleware); Litestar's
PrometheusController serves them.

Labels are bounded sets (operation names, outcomes, route templates); never a user id or an email.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from service.ops.breaker import State

PREFIX = "card_onboarding"

# Recorded by service.http.middleware rather than Litestar's Prometheus middleware, which cost 13% of a cached read
# (it wraps `send` with functools.wraps per request) and labels unmatched paths with the raw path (unbounded).
REQUESTS = Counter(
    f"{PREFIX}_requests_total",
    "Requests answered, by method, route template (`unmatched` when no route matched) and status code.",
    ["method", "path", "status_code"],
)
REQUEST_SECONDS = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "Time to answer, by method, route template and status code.",
    ["method", "path", "status_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, path: str, status: int, seconds: float) -> None:
    key = (method, path, status)
    children = _request_children.get(key)
    if children is None:  # label sets are bounded: methods x route templates x statuses
        labels = (method, path, str(status))
        children = _request_children[key] = (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


UPSTREAM_CALLS = Counter(
    f"{PREFIX}_upstream_calls_total",
    "Calls to the card provider, by operation and outcome (ok, rejected, rate_limited, unavailable, timeout, "
    "bad_response, auth_failed, circuit_open, cancelled).",
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
CIRCUIT_STATE = Gauge(
    f"{PREFIX}_circuit_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open. One circuit per upstream operation "
    "(service.yativo.circuits) and `redis`.",
    ["circuit"],
)
CIRCUIT_REFUSALS = Counter(
    f"{PREFIX}_circuit_refusals_total",
    "Calls refused without trying because their circuit was open (or its one probe was in flight).",
    ["circuit"],
)
# Answers served from what we last knew instead of failing; `reason` names the refresh that could not be had
# (service.usecases counts them: kyc_status, account).
DEGRADED = Counter(
    f"{PREFIX}_degraded_answers_total",
    "Answers given from the last known state because an upstream refresh failed or its circuit was open, by the "
    "refresh (reason).",
    ["reason"],
)
REFUSALS = Counter(
    f"{PREFIX}_refusals_total",
    "Requests refused by a limit: rate_limited (quotas) or otp_attempts_exceeded (code guessing).",
    ["code", "kind"],
)

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


def breaker_changed(name: str, state: State) -> None:
    CIRCUIT_STATE.labels(name).set(_STATE_VALUE[state])


def breaker_refused(name: str) -> None:
    CIRCUIT_REFUSALS.labels(name).inc()
