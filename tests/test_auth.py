"""Identity: JWTs verified against a JWKS served by a real loopback HTTP server (RS256, ES256), never mocked."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.http.auth import (
    JWKS_MIN_REFETCH_SECONDS,
    JWKS_TTL_SECONDS,
    LEEWAY_SECONDS,
    MAX_TOKEN_BYTES,
    Authenticator,
    AuthUnavailable,
    JwksKeys,
    Unauthenticated,
    User,
)
from service.settings import load_settings

HS_SECRET = "an-hs256-secret-for-tests-only-0123456789"
OMIT = object()


# --- keys, tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    rsa_next: rsa.RSAPrivateKey  # published only after a rotation
    rogue: rsa.RSAPrivateKey  # never published

    def jwk(self, name: str, kid: str) -> dict[str, Any]:
        key = getattr(self, name)
        if isinstance(key, rsa.RSAPrivateKey):
            data = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "RS256"
        else:
            data = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "ES256"
        return {**data, "kid": kid, "alg": alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        rsa_next=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rogue=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub: Any = "user-ada", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 300, **overrides}
    return {k: v for k, v in out.items() if v is not OMIT}


def craft(header: dict[str, Any], payload: dict[str, Any], sign: Any) -> str:
    """A compact JWS built by hand, so that any header or claim (even an invalid one) can be sent."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}".encode()
    return f"{signing_input.decode()}.{_b64(sign(signing_input))}"


def signed(key: Any, alg: str, kid: Any = OMIT, payload: dict[str, Any] | None = None) -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not OMIT:
        header["kid"] = kid
    algorithm = jwt.get_algorithm_by_name(alg)
    return craft(header, claims() if payload is None else payload, lambda data: algorithm.sign(data, key))


def rs256(keys: Keys, payload: dict[str, Any] | None = None, kid: Any = "rsa-1") -> str:
    return signed(keys.rsa, "RS256", kid, payload)


def hs256(key: bytes, payload: dict[str, Any], kid: Any = OMIT) -> str:
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not OMIT:
        header["kid"] = kid
    return craft(header, payload, lambda data: hmac.new(key, data, hashlib.sha256).digest())


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --- the identity provider's JWKS endpoint ------------------------------------------------------------


class JwksServer:
    """A real HTTP server on a loopback port that serves `jwks`, counts GETs, and can fail on demand."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.mode = "ok"  # "ok" | "error" (500 with HTML) | "hang" (never answers) | "drip" (a byte now and then)
        self.raw: bytes | None = None  # when set, served as-is with 200 instead of `jwks`
        self.requests = 0
        self.stopping = threading.Event()
        counting = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with counting:
                    server.requests += 1
                mode = server.mode
                try:
                    if mode == "hang":
                        server.stopping.wait(10)
                    elif mode == "drip":
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", "100000")
                        self.end_headers()
                        while not server.stopping.wait(0.05):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                    elif mode == "error":
                        self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
                    else:
                        body = server.raw if server.raw is not None else json.dumps(server.jwks).encode()
                        self._send(200, body, "application/json")
                except OSError:
                    pass  # the client gave up

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), name="jwks-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def idp(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer({"keys": [keys.jwk("rsa", "rsa-1"), keys.jwk("ec", "ec-1")]})
    try:
        yield server
    finally:
        server.stop()


def nothing_listening_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def authenticator(url: str, clock: Clock | None = None, **env: str) -> Authenticator:
    auth = Authenticator(load_settings({"AUTH_JWKS_URL": url, **env}))
    if clock is not None:
        auth._jwks = JwksKeys(url, clock=clock)
    return auth


async def refused(auth: Authenticator, header: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(header)
    return caught.value


# --- 1. accepted tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "key_name", "kid"), [("RS256", "rsa", "rsa-1"), ("ES256", "ec", "ec-1")])
async def test_a_token_signed_by_a_key_in_the_jwks_is_accepted_and_the_user_is_its_sub(
    idp: JwksServer, keys: Keys, alg: str, key_name: str, kid: str
) -> None:
    auth = authenticator(idp.url)

    user = await auth.authenticate(bearer(signed(getattr(keys, key_name), alg, kid, claims("user-ada|42"))))

    assert user == User("user-ada|42")


async def test_a_bearer_scheme_in_any_case_is_accepted(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)

    assert (await auth.authenticate(f"bearer {rs256(keys)}")).sub == "user-ada"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c", "Token abc.def.ghi"],
    ids=["none", "empty", "scheme-only", "blank-token", "basic", "garbage", "bad-segments", "other-scheme"],
)
async def test_a_missing_or_malformed_authorization_header_is_refused_without_a_jwks_fetch(
    idp: JwksServer, header: str | None
) -> None:
    auth = authenticator(idp.url)

    await refused(auth, header)

    assert idp.requests == 0


# --- 2. issuer and audience ---------------------------------------------------------------------------

ISSUER = "https://id.example.com/"
AUDIENCE = "card-onboarding"


@pytest.mark.parametrize(
    ("overrides", "accepted"),
    [
        ({"iss": ISSUER, "aud": AUDIENCE}, True),
        ({"iss": ISSUER, "aud": ["other-app", AUDIENCE]}, True),
        ({"iss": "https://evil.example.com/", "aud": AUDIENCE}, False),
        ({"aud": AUDIENCE}, False),
        ({"iss": ISSUER, "aud": "other-app"}, False),
        ({"iss": ISSUER}, False),
    ],
    ids=["both-right", "aud-list-with-ours", "wrong-iss", "missing-iss", "wrong-aud", "missing-aud"],
)
async def test_issuer_and_audience_are_enforced_when_configured(
    idp: JwksServer, keys: Keys, overrides: dict[str, Any], accepted: bool
) -> None:
    auth = authenticator(idp.url, AUTH_ISSUER=ISSUER, AUTH_AUDIENCE=AUDIENCE)
    header = bearer(rs256(keys, claims(**overrides)))

    if accepted:
        assert (await auth.authenticate(header)).sub == "user-ada"
    else:
        await refused(auth, header)


async def test_a_token_carrying_an_audience_is_accepted_when_no_audience_or_issuer_is_configured(
    idp: JwksServer, keys: Keys
) -> None:
    auth = authenticator(idp.url)

    user = await auth.authenticate(bearer(rs256(keys, claims(aud="some-other-app", iss="https://anyone/"))))

    assert user.sub == "user-ada"


# --- 3. refused tokens --------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: claims(exp=_now() - LEEWAY_SECONDS - 30), id="expired-beyond-leeway"),
        pytest.param(lambda: claims(exp=OMIT), id="exp-missing"),
        pytest.param(lambda: claims(nbf=_now() + LEEWAY_SECONDS + 60), id="nbf-beyond-leeway"),
        pytest.param(lambda: claims(iat=_now() + LEEWAY_SECONDS + 60), id="issued-in-the-future"),
        pytest.param(lambda: claims(sub=OMIT), id="sub-missing"),
        pytest.param(lambda: claims(sub=""), id="sub-empty"),
        pytest.param(lambda: claims(sub=12345), id="sub-a-number"),
        pytest.param(lambda: claims(sub=["user-ada"]), id="sub-a-list"),
        pytest.param(lambda: claims(sub="u" * 256), id="sub-too-long"),
        pytest.param(lambda: claims(sub="user-\ud800"), id="sub-with-a-lone-surrogate"),
        pytest.param(lambda: claims(sub="user\x00ada"), id="sub-with-a-nul"),
        pytest.param(lambda: claims(sub="user\nada"), id="sub-with-a-newline"),
        pytest.param(lambda: claims(sub="user\u202eada"), id="sub-with-a-bidi-override"),
        pytest.param(lambda: claims(sub="\x7f"), id="sub-only-a-control-character"),
    ],
)
async def test_a_validly_signed_token_with_bad_claims_is_refused(idp: JwksServer, keys: Keys, payload: Any) -> None:
    auth = authenticator(idp.url)

    await refused(auth, bearer(rs256(keys, payload())))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: claims(exp=_now() - LEEWAY_SECONDS + 10), id="expired-within-leeway"),
        pytest.param(lambda: claims(nbf=_now() + LEEWAY_SECONDS - 10), id="nbf-within-leeway"),
    ],
)
async def test_clock_skew_within_the_30_second_leeway_is_accepted(idp: JwksServer, keys: Keys, payload: Any) -> None:
    auth = authenticator(idp.url)

    assert (await auth.authenticate(bearer(rs256(keys, payload())))).sub == "user-ada"


async def test_an_unsigned_alg_none_token_is_refused(idp: JwksServer) -> None:
    auth = authenticator(idp.url, AUTH_JWT_SECRET=HS_SECRET)

    for header in ({"alg": "none", "kid": "rsa-1"}, {"alg": "None"}, {"alg": "NONE", "typ": "JWT"}):
        token = craft(header, claims(), lambda _data: b"")
        await refused(auth, bearer(token))
        await refused(auth, bearer(token[:-1]))  # and without the empty signature segment


async def test_an_hs256_token_is_refused_when_only_a_jwks_is_configured(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)

    await refused(auth, bearer(hs256(HS_SECRET.encode(), claims())))
    await refused(auth, bearer(hs256(keys.public_pem(), claims(), kid="rsa-1")))
    assert idp.requests == 0  # refused on the pinned algorithm list, before any key lookup


async def test_an_hs256_token_keyed_with_the_rsa_public_key_is_refused_even_with_a_secret_configured(
    idp: JwksServer, keys: Keys
) -> None:
    auth = authenticator(idp.url, AUTH_JWT_SECRET=HS_SECRET)
    pem = keys.public_pem()
    jwk_json = json.dumps(keys.jwk("rsa", "rsa-1")).encode()

    for forged_key in (pem, pem.strip(), jwk_json):
        await refused(auth, bearer(hs256(forged_key, claims(sub="admin"), kid="rsa-1")))
    # The same configuration does accept a genuine HS256 token and a genuine RS256 one.
    assert (await auth.authenticate(bearer(hs256(HS_SECRET.encode(), claims(sub="dev"))))).sub == "dev"
    assert (await auth.authenticate(bearer(rs256(keys)))).sub == "user-ada"


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused_even_with_a_known_kid(
    idp: JwksServer, keys: Keys
) -> None:
    auth = authenticator(idp.url)

    await refused(auth, bearer(signed(keys.rogue, "RS256", "rsa-1")))
    await refused(auth, bearer(signed(ec.generate_private_key(ec.SECP256R1()), "ES256", "ec-1")))


async def test_a_token_whose_alg_does_not_match_its_keys_type_is_refused(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)

    # ES256 header pointing at the RSA key, and RS256 pointing at the EC key.
    await refused(auth, bearer(signed(keys.ec, "ES256", "rsa-1")))
    await refused(auth, bearer(signed(keys.rsa, "RS256", "ec-1")))


async def test_a_token_with_an_unknown_kid_is_refused(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)

    error = await refused(auth, bearer(rs256(keys, kid="no-such-key")))

    assert "unknown key" in str(error)


@pytest.mark.parametrize("kid", [["rsa-1"], 7, {"k": 1}, None], ids=["list", "number", "object", "null"])
async def test_a_kid_that_is_not_a_string_is_refused_not_a_crash(idp: JwksServer, keys: Keys, kid: Any) -> None:
    auth = authenticator(idp.url)

    await refused(auth, bearer(rs256(keys, kid=kid)))


async def test_a_token_without_kid_is_refused_when_the_jwks_has_several_keys(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)

    await refused(auth, bearer(rs256(keys, kid=OMIT)))


async def test_a_token_over_8_kib_is_refused_even_when_validly_signed(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)
    small = rs256(keys, claims(pad="x" * 5000))
    large = rs256(keys, claims(pad="x" * (MAX_TOKEN_BYTES)))
    assert len(small) < MAX_TOKEN_BYTES < len(large)

    assert (await auth.authenticate(bearer(small))).sub == "user-ada"
    error = await refused(auth, bearer(large))

    assert "too large" in str(error)


# --- 4. the JWKS cache --------------------------------------------------------------------------------


async def test_many_verifications_make_one_jwks_fetch(idp: JwksServer, keys: Keys) -> None:
    auth = authenticator(idp.url)
    rs, es = rs256(keys), signed(keys.ec, "ES256", "ec-1")

    users = await asyncio.gather(*(auth.authenticate(bearer(rs if i % 2 else es)) for i in range(40)))
    for _ in range(20):
        await auth.authenticate(bearer(rs))

    assert {u.sub for u in users} == {"user-ada"}
    assert idp.requests == 1


async def test_a_flood_of_tokens_with_random_unknown_kids_makes_at_most_two_jwks_fetches(
    idp: JwksServer, keys: Keys
) -> None:
    auth = authenticator(idp.url)
    flood = [bearer(signed(keys.rogue, "RS256", secrets.token_hex(8))) for _ in range(50)]

    results = await asyncio.gather(*(auth.authenticate(h) for h in flood), return_exceptions=True)
    for header in flood[:10]:  # and again, one after the other
        await refused(auth, header)

    assert all(isinstance(r, Unauthenticated) for r in results), results
    assert idp.requests <= 2
    assert (await auth.authenticate(bearer(rs256(keys)))).sub == "user-ada"
    assert idp.requests <= 2


async def test_the_jwks_is_fetched_again_after_its_ttl(idp: JwksServer, keys: Keys) -> None:
    clock = Clock()
    auth = authenticator(idp.url, clock)
    token = bearer(rs256(keys))

    await auth.authenticate(token)
    clock.advance(JWKS_TTL_SECONDS - 1)
    await auth.authenticate(token)
    assert idp.requests == 1

    clock.advance(2)
    await auth.authenticate(token)
    assert idp.requests == 2


async def test_a_key_removed_from_the_jwks_is_refused_after_the_next_refetch(idp: JwksServer, keys: Keys) -> None:
    clock = Clock()
    auth = authenticator(idp.url, clock)
    await auth.authenticate(bearer(rs256(keys)))

    idp.jwks = {"keys": [keys.jwk("ec", "ec-1")]}
    clock.advance(JWKS_TTL_SECONDS + 1)

    await refused(auth, bearer(rs256(keys)))
    assert (await auth.authenticate(bearer(signed(keys.ec, "ES256", "ec-1")))).sub == "user-ada"
    assert idp.requests == 2


async def test_known_keys_keep_verifying_when_the_jwks_server_starts_answering_500(idp: JwksServer, keys: Keys) -> None:
    clock = Clock()
    auth = authenticator(idp.url, clock)
    await auth.authenticate(bearer(rs256(keys)))

    idp.mode = "error"
    clock.advance(JWKS_TTL_SECONDS + 1)
    for _ in range(5):
        assert (await auth.authenticate(bearer(rs256(keys)))).sub == "user-ada"
    assert idp.requests == 2  # one refetch tried, not one per request

    clock.advance(JWKS_MIN_REFETCH_SECONDS + 1)
    assert (await auth.authenticate(bearer(signed(keys.ec, "ES256", "ec-1")))).sub == "user-ada"
    # A bad token is still the user's problem, not an outage.
    await refused(auth, bearer(rs256(keys, kid="no-such-key")))
    assert idp.requests == 3


@pytest.mark.parametrize("failure", ["error", "refused"])
async def test_auth_is_unavailable_not_unauthenticated_when_no_keys_could_ever_be_fetched(
    idp: JwksServer, keys: Keys, failure: str
) -> None:
    url = idp.url
    if failure == "refused":
        url = nothing_listening_url()
    idp.mode = "error"
    auth = authenticator(url)

    for header in (bearer(rs256(keys)), bearer(rs256(keys, kid="no-such-key"))):
        with pytest.raises(AuthUnavailable):
            await auth.authenticate(header)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"null",
        b'{"keys": []}',
        b'{"keys": "x"}',
        b'{"keys": [1, "a"]}',
        b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',
    ],
)
async def test_a_jwks_endpoint_answering_nonsense_makes_auth_unavailable_not_a_crash(
    idp: JwksServer, keys: Keys, body: bytes
) -> None:
    idp.raw = body
    auth = authenticator(idp.url)

    with pytest.raises(AuthUnavailable):
        await auth.authenticate(bearer(rs256(keys)))


async def test_the_first_jwks_fetch_is_single_flight_under_concurrency(idp: JwksServer, keys: Keys) -> None:
    idp.mode = "error"
    auth = authenticator(idp.url)

    results = await asyncio.gather(*(auth.authenticate(bearer(rs256(keys))) for _ in range(30)), return_exceptions=True)

    assert all(isinstance(r, AuthUnavailable) for r in results), results
    assert idp.requests == 1


async def test_keys_are_fetched_again_within_seconds_when_the_identity_provider_was_down_at_start(
    idp: JwksServer, keys: Keys
) -> None:
    clock = Clock()
    idp.mode = "error"
    auth = authenticator(idp.url, clock)
    with pytest.raises(AuthUnavailable):
        await auth.authenticate(bearer(rs256(keys)))

    idp.mode = "ok"
    clock.advance(0.5)
    with pytest.raises(AuthUnavailable):  # retries are bounded, even while nothing works
        await auth.authenticate(bearer(rs256(keys)))
    assert idp.requests == 1

    clock.advance(1.0)
    assert (await auth.authenticate(bearer(rs256(keys)))).sub == "user-ada"
    assert idp.requests == 2


@pytest.mark.parametrize("mode", ["hang", "drip"])
async def test_a_jwks_server_that_hangs_or_drips_gives_auth_unavailable_within_the_fetch_deadline(
    idp: JwksServer, keys: Keys, mode: str
) -> None:
    idp.mode = mode
    auth = authenticator(idp.url)
    # The cache's clock runs 10x fast, so the 0.3 s fetch looks like 3 s: callers queued behind it must not refetch.
    auth._jwks = JwksKeys(idp.url, timeout=0.3, clock=lambda: time.monotonic() * 10)

    started = time.monotonic()
    results = await asyncio.gather(*(auth.authenticate(bearer(rs256(keys))) for _ in range(5)), return_exceptions=True)
    elapsed = time.monotonic() - started

    assert all(isinstance(r, AuthUnavailable) for r in results), results
    assert elapsed < 1.5
    assert idp.requests == 1


# --- 5. key rotation ----------------------------------------------------------------------------------


async def test_a_rotated_in_key_is_accepted_once_the_bounded_refetch_allows(idp: JwksServer, keys: Keys) -> None:
    clock = Clock()
    auth = authenticator(idp.url, clock)
    await auth.authenticate(bearer(rs256(keys)))
    idp.jwks = {"keys": [*idp.jwks["keys"], keys.jwk("rsa_next", "rsa-2")]}
    rotated = bearer(signed(keys.rsa_next, "RS256", "rsa-2", claims("user-bob")))

    clock.advance(1)
    await refused(auth, rotated)  # too soon to ask the identity provider again
    assert idp.requests == 1

    clock.advance(JWKS_MIN_REFETCH_SECONDS)
    assert (await auth.authenticate(rotated)).sub == "user-bob"
    assert (await auth.authenticate(bearer(rs256(keys)))).sub == "user-ada"
    assert idp.requests == 2


# --- 6. derived ids -----------------------------------------------------------------------------------

SUBS = ["user-ada", "user-bob", "auth0|65f0c0ffee", "ÄÖÜ-ünïcödé", "user-ada ", "x" * 255]


def test_external_customer_id_is_stable_distinct_per_sub_prefixed_and_hides_the_sub() -> None:
    ids = [User(sub).external_customer_id for sub in SUBS]

    assert ids == [User(sub).external_customer_id for sub in SUBS]
    assert len(set(ids)) == len(SUBS)
    for sub, value in zip(SUBS, ids, strict=True):
        assert value.startswith("usr_")
        assert sub.strip() not in value
        assert len(value) == 4 + 32 and all(c in "0123456789abcdef" for c in value[4:])
    # A known value pins the derivation: changing it would orphan every existing upstream customer.
    expected = "usr_" + hashlib.sha256(b"card-onboarding/external\x00user-ada").hexdigest()[:32]
    assert User("user-ada").external_customer_id == expected


def test_uid_is_stable_distinct_per_sub_hides_the_sub_and_differs_from_the_external_id() -> None:
    uids = [User(sub).uid for sub in SUBS]

    assert uids == [User(sub).uid for sub in SUBS]
    assert len(set(uids)) == len(SUBS)
    for sub, uid in zip(SUBS, uids, strict=True):
        assert sub.strip() not in uid
        assert uid not in User(sub).external_customer_id
    assert User("user-ada").uid == hashlib.sha256(b"card-onboarding/user\x00user-ada").hexdigest()[:32]


# --- 7. through the real app --------------------------------------------------------------------------


def _app(redis_url: str, jwks_url: str) -> Any:
    from service.app import create_app
    from service.emulator import EmulatorConfig, create_emulator_app

    settings = load_settings(
        {
            "AUTH_JWKS_URL": jwks_url,
            "YATIVO_BASE_URL": "http://emulator/api/v1",
            "YATIVO_API_KEY": "yativo_test",
            "YATIVO_API_SECRET": "s3cret",
            "REDIS_URL": redis_url,
        }
    )
    emulator = create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))
    return create_app(settings, upstream_transport=httpx.ASGITransport(app=emulator))


async def test_the_app_serves_a_user_with_an_rs256_token_verified_against_the_jwks(
    idp: JwksServer, keys: Keys, redis_url: str
) -> None:
    from litestar.testing import AsyncTestClient

    sub = f"jwks-user-{uuid.uuid4()}"
    async with AsyncTestClient(app=_app(redis_url, idp.url)) as client:
        ok = await client.get("/v1/card-onboarding", headers={"Authorization": bearer(rs256(keys, claims(sub)))})
        forged = await client.get(
            "/v1/card-onboarding", headers={"Authorization": bearer(signed(keys.rogue, "RS256", "rsa-1"))}
        )

    assert ok.status_code == 200, ok.text
    assert ok.json()["nextAction"]["type"] == "provide_email"
    assert forged.status_code == 401
    assert forged.json()["code"] == "unauthenticated"
    assert forged.json()["nextAction"]["type"] == "sign_in"
    assert idp.requests == 1


async def test_the_app_answers_503_auth_unavailable_not_401_when_the_jwks_server_is_down_from_the_start(
    keys: Keys, redis_url: str
) -> None:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=_app(redis_url, nothing_listening_url())) as client:
        response = await client.get("/v1/card-onboarding", headers={"Authorization": bearer(rs256(keys))})

    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "auth_unavailable"
    assert body["nextAction"]["type"] == "retry_later"
    assert int(response.headers["Retry-After"]) >= 1
