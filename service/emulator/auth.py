"""The bearer tokens the emulator hands out at /auth/token and checks on every upstream route."""

from __future__ import annotations

import secrets

from service.emulator.store import Store


class Tokens:
    """Any credentials get a token; a token is valid until token_ttl_seconds after it was issued."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def issue(self) -> tuple[str, float]:
        token = f"emu_{secrets.token_urlsafe(32)}"
        expires_at = self._store.clock.now() + self._store.config.token_ttl_seconds
        self._store.tokens[token] = expires_at
        return token, expires_at

    def authenticate(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        expires_at = self._store.tokens.get(token.strip())
        return expires_at is not None and self._store.clock.now() < expires_at
