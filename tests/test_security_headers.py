"""Every answer carries the security headers and a request id; CORS answers only the origins on the allow-list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import JWT_SECRET, Harness
from tests.journey import EMAIL

EXPECTED = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}
ALLOWED = "https://app.example.com"


def assert_secure(response: httpx.Response, cache_control: str = "no-store") -> None:
    for name, value in {**EXPECTED, "cache-control": cache_control}.items():
        assert response.headers.get_list(name) == [value], (name, response.status_code)
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/card-onboarding", None, 200),
        ("POST", "/v1/card-onboarding", {"email": EMAIL}, 200),
        ("POST", "/v1/card-onboarding", {"email": "not-an-email"}, 422),
        ("GET", "/v1/card-onboarding/nope", None, 404),
        ("DELETE", "/v1/card-onboarding", None, 405),
        ("POST", "/v1/card-onboarding/card", None, 409),
        ("GET", "/livez", None, 200),
        ("GET", "/readyz", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/schema/openapi.json", None, 200),
    ],
)
async def test_every_answer_carries_the_security_headers(
    bff: Harness, method: str, path: str, body: Any, status: int
) -> None:
    response = await bff.client.request(method, path, json=body, headers=bff.auth())
    assert response.status_code == status, response.text
    # The state's GET is the one answer a browser may keep, for this user, revalidating it (tests/test_etag.py).
    assert_secure(response, "private, no-cache" if (method, path) == ("GET", "/v1/card-onboarding") else "no-store")


async def test_a_401_and_a_413_carry_the_security_headers(bff: Harness) -> None:
    unauthenticated = await bff.client.get("/v1/card-onboarding")
    too_large = await bff.client.post(
        "/v1/card-onboarding", content=b'{"email":"' + b"a" * 17000 + b'"}', headers=bff.auth()
    )
    assert (unauthenticated.status_code, too_large.status_code) == (401, 413)
    assert_secure(unauthenticated)
    assert_secure(too_large)


async def test_a_500_carries_the_security_headers_and_no_trace(redis_url: str) -> None:
    from litestar.testing import AsyncTestClient

    from service.app import create_app
    from service.http.auth import issue_dev_token
    from service.settings import load_settings

    class BrokenRedis:
        """Fails with an error the store does not expect, so the request ends in the catch-all handler."""

        async def get(self, name: str) -> Any:
            raise RuntimeError("boom-internal-detail")

        def pipeline(self, transaction: bool = True) -> Any:
            raise RuntimeError("boom-internal-detail")

        async def ping(self) -> bool:
            return True

    settings = load_settings({"AUTH_JWT_SECRET": JWT_SECRET, "REDIS_URL": redis_url})
    app = create_app(settings, redis=BrokenRedis())  # type: ignore[arg-type]
    async with AsyncTestClient(app=app) as client:
        token = issue_dev_token(JWT_SECRET, "user-ada")
        response = await client.get("/v1/card-onboarding", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.json()["nextAction"]["type"] == "retry_later"
    assert "boom-internal-detail" not in response.text and "Traceback" not in response.text
    assert_secure(response)


async def test_a_header_set_by_a_handler_is_replaced_not_duplicated(bff: Harness) -> None:
    # Litestar's OpenAPI controller sets its own caching headers on the document; ours must win, once.
    response = await bff.client.get("/schema/openapi.json")
    assert response.headers.get_list("cache-control") == ["no-store"]


# --- CORS -----------------------------------------------------------------------------------------


@pytest.fixture
async def cors_client(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    from litestar.testing import AsyncTestClient

    from service.app import create_app
    from service.settings import load_settings

    env = {"AUTH_JWT_SECRET": JWT_SECRET, "REDIS_URL": redis_url, "CORS_ALLOW_ORIGINS": request.param}
    async with AsyncTestClient(app=create_app(load_settings(env))) as client:
        yield client


def cors_headers(response: httpx.Response) -> set[str]:
    return {name for name in response.headers if name.startswith("access-control-")}


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.mark.parametrize("cors_client", [f"{ALLOWED}, https://admin.example.com"], indirect=True)
async def test_an_allowed_origin_gets_cors_headers_on_preflight_and_on_a_real_request(cors_client: Any) -> None:
    preflight = await cors_client.options("/v1/card-onboarding", headers={"Origin": ALLOWED, **PREFLIGHT})
    real = await cors_client.get("/v1/card-onboarding", headers={"Origin": ALLOWED})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert_secure(preflight)
    assert real.status_code == 401  # no token: CORS headers still let the page read the problem
    assert real.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in real.headers["access-control-expose-headers"].lower()
    assert "origin" in real.headers["vary"].lower()


@pytest.mark.parametrize("cors_client", [ALLOWED], indirect=True)
@pytest.mark.parametrize(
    "origin",
    ["https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"],
    ids=["other host", "suffix trick", "plain http", "null origin"],
)
async def test_an_origin_not_on_the_list_gets_no_cors_headers(cors_client: Any, origin: str) -> None:
    preflight = await cors_client.options("/v1/card-onboarding", headers={"Origin": origin, **PREFLIGHT})
    real = await cors_client.get("/v1/card-onboarding", headers={"Origin": origin})
    assert preflight.status_code == 400
    assert cors_headers(preflight) == set()
    assert real.status_code == 401
    # Litestar still lists the allowed methods and headers (the OpenAPI document says as much), but without
    # Access-Control-Allow-Origin the browser lets the page read nothing.
    assert "access-control-allow-origin" not in real.headers
    assert "access-control-allow-credentials" not in real.headers


@pytest.mark.parametrize("cors_client", [""], indirect=True)
async def test_with_an_empty_allow_list_no_cors_headers_are_sent(cors_client: Any) -> None:
    preflight = await cors_client.options("/v1/card-onboarding", headers={"Origin": ALLOWED, **PREFLIGHT})
    real = await cors_client.get("/v1/card-onboarding", headers={"Origin": ALLOWED})
    assert cors_headers(preflight) == set()
    assert cors_headers(real) == set()
    assert_secure(preflight)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/card-onboarding", "GET, OPTIONS, POST"),
        ("/v1/card-onboarding/card", "OPTIONS, POST"),
        ("/v1/webhooks/yativo", "OPTIONS, POST"),
        ("/livez", "GET, OPTIONS"),
    ],
)
async def test_options_and_405_name_every_method_of_the_path(bff: Harness, path: str, allow: str) -> None:
    options = await bff.client.options(path)
    trace = await bff.client.request("TRACE", path, headers=bff.auth())
    assert options.status_code == 204
    assert options.headers["allow"] == allow
    assert_secure(options)
    assert trace.status_code == 405
    assert trace.json()["code"] == "method_not_allowed"
    assert sorted(m.strip() for m in trace.headers["allow"].split(",")) == allow.split(", ")
    assert await bff.calls() == []


SDK_PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization,content-type,idempotency-key,if-none-match,x-request-id",
}
EXPOSED = {"etag", "retry-after", "x-request-id", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}


@pytest.mark.parametrize("cors_client", [ALLOWED], indirect=True)
async def test_a_browser_may_send_every_header_the_sdk_sends(cors_client: Any) -> None:
    preflight = await cors_client.options("/v1/card-onboarding", headers={"Origin": ALLOWED, **SDK_PREFLIGHT})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-none-match", "x-request-id"} <= allowed


async def test_a_page_on_an_allowed_origin_can_read_the_etag_retry_after_and_request_id(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> None:
    from tests.conftest import harness

    transport = httpx.ASGITransport(app=emulator_app)
    async with harness(control, redis_admin, transport=transport, REDIS_URL=redis_url, CORS_ALLOW_ORIGINS=ALLOWED) as h:
        state = await h.get(headers={"Origin": ALLOWED})
        await h.fault({"path": "*", "status": 503})
        refused = await h.post("", {"email": EMAIL}, headers={"Origin": ALLOWED})
    assert state.status_code == 200 and state.headers["etag"]
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert {v.strip().lower() for v in state.headers["vary"].split(",")} >= {"origin", "authorization"}
    for response in (state, refused):
        assert response.headers["access-control-allow-origin"] == ALLOWED
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert exposed >= EXPOSED, response.status_code
