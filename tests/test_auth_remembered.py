"""Tokens that verified once are remembered: never past their expiry, and bounded in number."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from service.http.auth import LEEWAY_SECONDS, VERIFIED_TOKEN_LIMIT, Authenticator, Unauthenticated
from service.settings import load_settings

SECRET = "remembered-tokens-secret-0000000000000"


def token(sub: str, exp: float) -> str:
    return "Bearer " + jwt.encode({"sub": sub, "exp": int(exp)}, SECRET, algorithm="HS256")


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    auth = Authenticator(load_settings({"AUTH_JWT_SECRET": SECRET}))
    exp = int(time.time()) - LEEWAY_SECONDS + 2  # acceptable for one or two more seconds, leeway included
    header = token("user-ada", exp)
    assert (await auth.authenticate(header)).sub == "user-ada"
    assert (await auth.authenticate(header)).sub == "user-ada"
    await asyncio.sleep(exp + LEEWAY_SECONDS - time.time() + 0.2)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(header)


async def test_a_tampered_copy_of_a_remembered_token_is_still_refused() -> None:
    auth = Authenticator(load_settings({"AUTH_JWT_SECRET": SECRET}))
    header = token("user-ada", time.time() + 600)
    await auth.authenticate(header)
    forged = "Bearer " + jwt.encode({"sub": "user-bob", "exp": int(time.time()) + 600}, "x" * 40, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        await auth.authenticate(forged)


async def test_remembered_tokens_are_bounded_and_each_still_names_its_own_user() -> None:
    auth = Authenticator(load_settings({"AUTH_JWT_SECRET": SECRET}))
    headers = [token(f"user-{i}", time.time() + 600) for i in range(VERIFIED_TOKEN_LIMIT + 10)]
    for header in headers:
        await auth.authenticate(header)
    assert len(auth._verified) == VERIFIED_TOKEN_LIMIT
    assert [(await auth.authenticate(h)).sub for h in (headers[0], headers[-1])] == [
        "user-0",
        f"user-{len(headers) - 1}",
    ]
