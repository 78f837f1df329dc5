"""The composition root: create_app builds the service from settings and adapters; nothing happens at import."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from litestar import Litestar, Request, get
from litestar.config.cors import CORSConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController
from litestar.response import Response
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from service.http.auth import Authenticator
from service.http.docs import DOCS_PATH, assets_router, swagger_plugin
from service.http.middleware import AnswerOptions, RequestIdMiddleware
from service.http.openapi import finalize as finalize_openapi
from service.http.problems import EXCEPTION_HANDLERS
from service.http.reading import ReadDeadline
from service.http.routes import REQUEST_BODIES, OnboardingController
from service.http.webhooks import WebhookReceiver, receive_yativo_webhook
from service.ops import metrics
from service.ops.breaker import CircuitBreaker, State
from service.ops.logs import drain as drain_logs
from service.ops.tracing import Tracing
from service.settings import Settings
from service.storage.flights import Flights
from service.storage.limits import Limits, Quotas
from service.storage.store import RedisLike, StateStore, connect
from service.usecases import Onboarding
from service.yativo import YativoClient

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 16 * 1024
API_VERSION = "1.0.0"


@get("/livez", operation_id="livez", tags=["operations"], summary="Alive (checks no dependency)", sync_to_thread=False)
def livez() -> dict[str, str]:
    """Alive: checks no dependency, so a slow Redis or upstream never restarts healthy pods."""
    return {"status": "ok"}


@get(
    "/readyz",
    operation_id="readyz",
    tags=["operations"],
    summary="Ready to serve; dependency health in the body",
    responses={
        503: ResponseSpec(
            dict[str, Any], description="Starting or stopping: take this pod out", generate_examples=False
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    state = request.app.state
    redis_ok = await _redis_ok(state.redis)
    # Circuits refusing calls now (open, or half-open while one probe runs): the Yativo operations', then Redis'.
    upstream_open = state.yativo.circuits.not_closed()
    redis_open = [] if state.store.breaker.state is State.CLOSED else [state.store.breaker.name]
    body: dict[str, Any] = {
        "status": "ready" if state.ready else "not_ready",
        "redis": "ok" if redis_ok else "unavailable",
        "upstream": "degraded" if upstream_open else "ok",
        "openCircuits": upstream_open + redis_open,
    }
    # Degraded dependencies still serve what they can: only starting or stopping takes a pod out.
    return Response(body, status_code=200 if state.ready else HTTP_503_SERVICE_UNAVAILABLE)


async def _redis_ok(redis: RedisLike) -> bool:
    try:
        async with asyncio.timeout(0.25):
            return bool(await redis.ping())  # type: ignore[attr-defined]
    except Exception:  # readiness reports any failure as "unavailable", never raises
        return False


def create_app(
    settings: Settings,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    redis: RedisLike | None = None,
    clock: Any = time.time,
    tracing: Tracing | None = None,
) -> Litestar:
    tracing = tracing or Tracing.from_settings(settings)

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        client = YativoClient(
            settings.yativo_base_url,
            settings.yativo_api_key,
            settings.yativo_api_secret,
            timeout_seconds=settings.yativo_timeout_seconds,
            transport=upstream_transport,
            tracer_provider=tracing.provider,
        )
        store_redis = redis if redis is not None else connect(settings.redis_url, cluster=settings.redis_cluster)
        app.state.yativo = client
        app.state.redis = store_redis
        app.state.auth = Authenticator(settings)
        redis_breaker = CircuitBreaker(
            "redis",
            threshold=3,
            cooldown=1.0,
            max_cooldown=5.0,
            on_change=metrics.breaker_changed,
            on_refusal=metrics.breaker_refused,
        )
        store = StateStore(store_redis, breaker=redis_breaker)
        quotas = Quotas(
            start_per_user=settings.start_quota_per_user,
            start_per_address=settings.start_quota_per_address,
            phone_per_user=settings.sms_quota_per_user,
            phone_per_address=settings.sms_quota_per_address,
        )
        app.state.store = store
        app.state.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        app.state.onboarding = Onboarding(
            client,
            store,
            Flights(store_redis, redis_breaker, deadline_seconds=settings.request_deadline_seconds),
            Limits(store_redis, redis_breaker, quotas),
            clock=clock,
            resend_cooldown_seconds=settings.email_resend_cooldown_seconds,
            kyc_link_hosts=settings.kyc_link_hosts,
        )
        app.state.webhooks = WebhookReceiver(settings, store_redis, clock=clock)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await client.aclose()
            if redis is None:
                await store_redis.aclose()  # type: ignore[attr-defined]
            log.info("stopped", detail="in-flight requests finished, clients closed")
            drain_logs()  # after a SIGTERM the process ends without exit handlers: nothing may stay buffered

    openapi = OpenAPIConfig(
        title="Card onboarding API",
        version=API_VERSION,
        description="Issue a Visa virtual card: every answer carries one `nextAction` telling the frontend what to do next.",
        path=DOCS_PATH,
        render_plugins=[JsonRenderPlugin(), swagger_plugin()],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        use_handler_docstrings=False,
    )
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST"],
            # What the TypeScript SDK sends and reads (sdk/typescript): without these, a browser hides Retry-After
            # and the ETag from the page and refuses the preflight of a conditional or idempotent call.
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"],
            expose_headers=[
                "ETag",
                "Retry-After",
                "X-Request-ID",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
            max_age=600,
        )
        if settings.cors_allow_origins
        else None
    )
    app = Litestar(
        route_handlers=[
            OnboardingController,
            receive_yativo_webhook,
            livez,
            readyz,
            PrometheusController,
            assets_router(),
        ],
        lifespan=[resources],
        on_shutdown=[tracing.shutdown],
        plugins=tracing.plugins,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi,
        cors_config=cors,
        logging_config=None,
        debug=False,
    )
    finalize_openapi(app.openapi_schema, REQUEST_BODIES)
    # Outside Litestar's router, so every answer (404, 405, CORS preflight, errors) gets the id and headers.
    allow = {r.path: ", ".join(sorted(r.methods)) for r in app.routes if isinstance(r, HTTPRoute) and "{" not in r.path}
    # ReadDeadline inside RequestIdMiddleware, so a timed-out or abandoned body is logged and counted like any request.
    read_deadline = ReadDeadline(AnswerOptions(app.asgi_handler, allow), settings.request_read_timeout_seconds)
    app.asgi_handler = RequestIdMiddleware(read_deadline)
    return app
