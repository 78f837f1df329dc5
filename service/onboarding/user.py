"""The signed-in user, and the ids derived from the token's `sub`: our storage key and our upstream reference."""

from __future__ import annotations

import hashlib

import msgspec


class User(msgspec.Struct, frozen=True):
    sub: str

    @property
    def uid(self) -> str:
        """Key for our own storage; the raw `sub` never leaves the process."""
        return hashlib.sha256(b"card-onboarding/user\x00" + self.sub.encode()).hexdigest()[:32]

    @property
    def external_customer_id(self) -> str:
        """Our reference at the upstream: stable for a `sub`, and the only key used to find its customer."""
        return "usr_" + hashlib.sha256(b"card-onboarding/external\x00" + self.sub.encode()).hexdigest()[:32]
