"""A circuit breaker: after repeated failures a dependency is skipped for a while, then probed to recover.

Written here rather than taken from a library: the maintained breakers are either synchronous (pybreaker) or
bring their own storage and retry policy (purgatory); this one is 60 lines, in-process and clock-injectable.
Per process on purpose: each replica judges its own path to the dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` seconds lets one probe through.

    A failed probe reopens it with the cooldown doubled (up to `max_cooldown`); a success closes it.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        cooldown: float = 2.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._on_change = on_change
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
        """None when a call may go ahead; otherwise the seconds until the next probe is allowed."""
        if self._state is State.CLOSED:
            return None
        wait = self._opened_at + self._cooldown - self._clock()
        if wait > 0:
            return wait
        if self._probing:
            return 0.5  # one probe at a time; the others are told to come back shortly
        self._set(State.HALF_OPEN)
        self._probing = True
        return None

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        self._cooldown = self._base_cooldown
        if self._state is not State.CLOSED:
            self._set(State.CLOSED)

    def failure(self) -> None:
        self._failures += 1
        if self._state is State.HALF_OPEN:
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self._max_cooldown)
            self._open()
        elif self._state is State.CLOSED and self._failures >= self._threshold:
            self._open()

    def release(self) -> None:
        """A call that ended without telling anything about the dependency (cancelled): free the probe slot."""
        self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set(State.OPEN)

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)
