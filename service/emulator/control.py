"""The control plane's own operations: listing customers, the outbox and the call log, changing settings, reset."""

from __future__ import annotations

from typing import Any

import msgspec

from service.emulator.config import EmulatorConfig
from service.emulator.store import CallRecord, OutboxMessage, Store, customer_record, normalize_email


class Control:
    """What /_emulator reads and changes besides one customer's KYC, card and account (and the faults)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def reset(self) -> None:
        self._store.clear()

    def reconfigure(self, **changes: Any) -> EmulatorConfig:
        self._store.config = msgspec.structs.replace(self._store.config, **changes)
        return self._store.config

    def outbox(self, to: str | None = None) -> list[OutboxMessage]:
        if to is None:
            return list(self._store.outbox)
        wanted = normalize_email(to)
        return [message for message in self._store.outbox if message.to.lower() == wanted]

    def calls(self) -> list[CallRecord]:
        return list(self._store.calls)

    def customers(self) -> list[dict[str, Any]]:
        now = self._store.clock.now()
        return [customer_record(self._store.settle(customer, now)) for customer in self._store.customers.values()]
