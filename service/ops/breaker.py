"""A circuit breaker: after repeated failures a dependency is skipped for a while, then probed to recover.

Written here rather than taken from a library: no maintained asyncio breaker combines a windowed failure rate
with a minimum of calls, a run of consecutive failures, one probe at a time and an injectable clock, behind an
allow/success/failure/release interface the caller classifies outcomes for (pybreaker, circuitbreaker,
aiobreaker and purgatory count consecutive failures only; interlock-cb has the failure rate but no run).
Per process on purpose: each replica judges its own path to the dependency.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from enum import Enum


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# While the one probe is in flight, everyone else is told to come back this soon.
PROBE_WAIT_SECONDS = 0.5


class CircuitBreaker:
    """Opens on a run of `threshold` consecutive failures, or, when `failure_rate` is set, once the calls of the
    last `window_seconds` number at least `minimum_calls` and at least that share of them failed.

    Open, it refuses for `cooldown` seconds, then lets one probe through (half-open). A failed probe reopens it
    with the cooldown doubled (up to `max_cooldown`); a success closes it. Outcomes reported while it is open
    (calls admitted before it opened) are ignored: only the probe decides.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        failure_rate: float | None = None,
        minimum_calls: int = 10,
        window_seconds: float = 60.0,
        cooldown: float = 2.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._failure_rate = failure_rate
        self._minimum_calls = minimum_calls
        self._window = max(1, int(window_seconds))
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._on_change = on_change
        self._on_refusal = on_refusal
        self._run = 0  # consecutive failures
        # The sliding window: one [second, calls, failures] bucket per second that saw a call, oldest first.
        self._buckets: collections.deque[list[int]] = collections.deque()
        self._calls = 0
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at = 0.0
        self._probing = False
        self._state = State.CLOSED
        if on_change is not None:
            on_change(name, State.CLOSED)  # so the state is exported from the start, not only after a change

    @property
    def state(self) -> State:
        return self._state

    def allow(self) -> float | None:
        """None when a call may go ahead; otherwise the seconds until a call may be tried again."""
        if self._state is State.CLOSED:
            return None
        wait = self._opened_at + self._cooldown - self._clock()
        if wait <= 0 and not self._probing:
            self._set(State.HALF_OPEN)
            self._probing = True
            return None
        if self._on_refusal is not None:
            self._on_refusal(self.name)
        return wait if wait > 0 else PROBE_WAIT_SECONDS

    def success(self) -> None:
        if self._state is State.OPEN:
            return
        if self._state is State.HALF_OPEN:
            self._close()
            return
        self._run = 0
        self._record(failed=False)

    def failure(self) -> None:
        if self._state is State.OPEN:
            return
        if self._state is State.HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, self._max_cooldown)
            self._open()
            return
        self._run += 1
        self._record(failed=True)
        if self._run >= self._threshold or self._rate_exceeded():
            self._open()

    def release(self) -> None:
        """A call that ended without telling anything about the dependency (cancelled): free the probe slot."""
        self._probing = False

    def _record(self, *, failed: bool) -> None:
        now = int(self._clock())
        buckets = self._buckets
        while buckets and buckets[0][0] <= now - self._window:
            _, calls, failures = buckets.popleft()
            self._calls -= calls
            self._failures -= failures
        if not buckets or buckets[-1][0] != now:
            buckets.append([now, 0, 0])
        buckets[-1][1] += 1
        buckets[-1][2] += failed
        self._calls += 1
        self._failures += failed

    def _rate_exceeded(self) -> bool:
        if self._failure_rate is None or self._calls < self._minimum_calls:
            return False
        return self._failures >= self._failure_rate * self._calls

    def _forget_calls(self) -> None:
        self._run = 0
        self._buckets.clear()
        self._calls = self._failures = 0

    def _open(self) -> None:
        self._forget_calls()
        self._probing = False
        self._opened_at = self._clock()
        self._set(State.OPEN)

    def _close(self) -> None:
        self._forget_calls()
        self._probing = False
        self._cooldown = self._base_cooldown
        self._set(State.CLOSED)

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)
