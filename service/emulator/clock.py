"""The emulator's clock (wall time plus an offset tests move forward) and the upstream's time format."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class EmulatorClock:
    """Wall-clock time plus an offset that tests move forward."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return self._source() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


def iso(timestamp: float) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as the upstream writes its times."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
