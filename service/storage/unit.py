"""A leased flight's unit of work: the snapshot its lease script read, and the writes sent with its release.

Inside a flight that holds the user's lease (service.storage.flights), the store reads the snapshot that the lease
script fetched in the same round trip instead of asking Redis again, and keeps the last snapshot saved and the code
tries to give back until the flight ends; one script then saves them, releases the lease and wakes any followers.
Nothing else writes a user's snapshot while the lease is held, so the deferred writes change what the next reader
sees only in when it sees it: at the release, together with the lease (which is when followers read it anyway).
Outside a leased flight (Redis unusable, a webhook) every read and write goes to Redis at once.
"""

from __future__ import annotations

from contextvars import ContextVar

from service.onboarding.snapshot import Snapshot


class Unit:
    """One leased flight's pending Redis work, for one user."""

    __slots__ = ("fetched", "read", "refunds", "snapshot", "taken_at", "uid")

    def __init__(self, uid: str, fetched: bytes | None, taken_at: float) -> None:
        self.uid = uid
        self.taken_at = taken_at  # event-loop time just before the lease was asked for
        self.fetched = fetched  # the raw snapshot as the lease script read it (None: there was none)
        self.read = False  # the fetched value was handed out; later reads go to Redis or `snapshot`
        self.snapshot: Snapshot | None = None  # the last snapshot saved in this flight, written at the release
        self.refunds: list[str] = []  # code-try counter keys to decrement at the release


_current: ContextVar[Unit | None] = ContextVar("bff_storage_unit", default=None)


def begin(unit: Unit) -> None:
    """Make `unit` the current task's (a flight's lead runs in a task of its own, so it ends with it)."""
    _current.set(unit)


def end() -> None:
    _current.set(None)


def current(uid: str) -> Unit | None:
    """The running flight's unit if it holds `uid`'s lease."""
    unit = _current.get()
    return unit if unit is not None and unit.uid == uid else None
