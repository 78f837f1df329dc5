"""Who is calling: verifies the company's JWT (HS256 secret or a JWKS) and derives every id from its `sub`."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import anyio.to_thread
import jwt
import structlog

from service.onboarding.user import User
from service.settings import Settings

log = structlog.get_logger(__name__)

# Pinned by configuration, never taken from the token (RFC 8725 §3.1).
JWKS_ALGORITHMS = ("RS256", "ES256")
HS_ALGORITHMS = ("HS256",)
MAX_TOKEN_BYTES = 8192
# A `sub` is an identifier, not text to show: at most this many characters, every one printable.
MAX_SUB_CHARS = 255
LEEWAY_SECONDS = 30
JWKS_TTL_SECONDS = 300.0
# However many unknown `kid`s arrive, the identity provider is asked at most this often.
JWKS_MIN_REFETCH_SECONDS = 30.0
# While no keys were ever fetched every request fails, so the identity provider is asked again sooner.
JWKS_RETRY_WITHOUT_KEYS_SECONDS = 1.0
# A frontend sends the same token on every call, and checking a signature costs more than the rest of a cached
# read: a token that verified is remembered in a bounded table, never past its expiry, at most this long, and with
# a JWKS only while its key is still held and no refetch is due.
VERIFIED_TOKEN_SECONDS = 60.0
VERIFIED_TOKEN_LIMIT = 4096
# One overall deadline per fetch: urllib's timeout is per socket operation, so a dripping server never trips it.
JWKS_FETCH_TIMEOUT_SECONDS = 3.0


class Unauthenticated(Exception):
    """No token, or one that does not verify: the user must sign in (again)."""


class AuthUnavailable(Exception):
    """Tokens cannot be checked right now (no signing keys could ever be fetched): not the user's fault."""


class JwksKeys:
    """JWKS cache: TTL, single-flight refetch, bounded refetch for unknown kids, stale keys kept on error."""

    def __init__(self, url: str, *, clock: Any = time.monotonic, timeout: float = JWKS_FETCH_TIMEOUT_SECONDS) -> None:
        # PyJWKClient only fetches (its own cache refetches on every unknown kid, which we must bound).
        self._fetcher = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=timeout)
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def current(self, key: jwt.PyJWK) -> bool:
        """Whether `key` is still one of the keys, with no refetch due: a remembered token may skip verifying."""
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at <= JWKS_TTL_SECONDS
        return fresh and any(known is key for known in self._keys.values())

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at > JWKS_TTL_SECONDS or kid not in self._keys:
            await self._refresh()
        if not self._keys:
            raise AuthUnavailable("no signing keys")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise Unauthenticated("unknown key id")
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            since = None if self._attempted_at is None else now - self._attempted_at
            if (
                since is not None
                and since < JWKS_MIN_REFETCH_SECONDS
                and (self._keys or since < JWKS_RETRY_WITHOUT_KEYS_SECONDS)
            ):
                return
            self._attempted_at = now
            try:
                async with asyncio.timeout(self._timeout):  # TimeoutError is an OSError
                    data = await anyio.to_thread.run_sync(self._fetcher.fetch_data, abandon_on_cancel=True)
                keys = {
                    k.key_id or "": k
                    for k in jwt.PyJWKSet.from_dict(data).keys
                    if k.algorithm_name in JWKS_ALGORITHMS or k.algorithm_name is None
                }
            except (jwt.PyJWKClientError, jwt.PyJWKSetError, OSError, ValueError) as exc:
                # Stale-if-error: keep serving with the keys we have.
                log.warning("jwks_fetch_failed", error=type(exc).__name__, have_keys=bool(self._keys))
                return
            finally:
                # Measured from the end, so callers queued behind a slow fetch do not each fetch again.
                self._attempted_at = self._clock()
            self._keys = keys
            self._fetched_at = now


def _secret_key(secret: str) -> jwt.PyJWK:
    encoded = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    return jwt.PyJWK({"kty": "oct", "k": encoded}, algorithm=HS_ALGORITHMS[0])


class Authenticator:
    def __init__(self, settings: Settings, *, clock: Any = time.time) -> None:
        self._clock = clock
        self._verified: dict[str, tuple[float, User, jwt.PyJWK | None]] = {}
        self._issuer = settings.auth_issuer or None
        self._audience = settings.auth_audience or None
        # As a PyJWK, the secret is prepared once: a bare one is re-checked for PEM and SSH shapes on every token.
        self._secret = _secret_key(settings.auth_jwt_secret) if settings.auth_jwt_secret else None
        self._jwks = JwksKeys(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self._options = {"require": ["exp", "sub"], "verify_aud": self._audience is not None}
        if self._issuer:
            self._options["require"].append("iss")

    async def authenticate(self, authorization: str | None) -> User:
        token = _bearer(authorization)
        now = self._clock()
        known = self._verified.get(token)
        if known is not None:
            until, user, key = known
            if now < until and (key is None or (self._jwks is not None and self._jwks.current(key))):
                return user
            del self._verified[token]
        user, expires, key = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKEN_LIMIT:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (min(now + VERIFIED_TOKEN_SECONDS, expires), user, key)
        return user

    async def _verify(self, token: str) -> tuple[User, float, jwt.PyJWK | None]:
        """The user, until when the token is acceptable, and the JWKS key that verified it (None: the secret)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        alg = header.get("alg")
        jwk: jwt.PyJWK | None = None
        if self._jwks is not None and alg in JWKS_ALGORITHMS:
            jwk = await self._jwks.key(header.get("kid"))
            key: Any = jwk
            algorithms = [alg]
        elif self._secret is not None and alg in HS_ALGORITHMS:
            key, algorithms = self._secret, list(HS_ALGORITHMS)
        else:
            raise Unauthenticated("algorithm not allowed")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(type(exc).__name__) from None
        sub = claims.get("sub")
        # isprintable() is False for control and format characters, separators other than the space, unassigned
        # code points and lone surrogates (which JSON can carry as "\ud800" but which cannot be encoded for the
        # ids derived from `sub`).
        if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_CHARS or not sub.isprintable():
            raise Unauthenticated("bad subject")
        # PyJWT has checked that `exp` is a number and not past (with the leeway).
        return User(sub), float(claims["exp"]) + LEEWAY_SECONDS, jwk


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("no token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("not a bearer token")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated("token too large")
    return token


def issue_dev_token(secret: str, sub: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A token for local development and tests (HS256, the same checks as production tokens)."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl_seconds}, secret, algorithm="HS256")
