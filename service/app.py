"""The composition root: create_app builds the service from settings and adapters; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, get

from service.settings import Settings
from service.yativo import YativoClient


@get("/livez", operation_id="livez", include_in_schema=False, sync_to_thread=False)
def livez() -> dict[str, str]:
    """Alive: checks no dependency, so a slow Redis or upstream never restarts healthy pods."""
    return {"status": "ok"}


def create_app(settings: Settings, *, upstream_transport: httpx.AsyncBaseTransport | None = None) -> Litestar:
    @asynccontextmanager
    async def upstream(app: Litestar) -> AsyncIterator[None]:
        client = YativoClient(
            settings.yativo_base_url,
            settings.yativo_api_key,
            settings.yativo_api_secret,
            timeout_seconds=settings.yativo_timeout_seconds,
            transport=upstream_transport,
        )
        app.state.yativo = client
        try:
            yield
        finally:
            await client.aclose()

    return Litestar(route_handlers=[livez], lifespan=[upstream])
