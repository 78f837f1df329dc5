"""`python -m service dev`: the service, the emulator and Redis (or an in-process store) in one command."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from redis import Redis
from redis.exceptions import RedisError

from service import demo
from service.app import create_app
from service.emulator import EmulatorConfig, create_emulator_app
from service.http.auth import issue_dev_token
from service.ops.logs import configure_logging
from service.settings import DEFAULT_REDIS_URL, DEV_JWT_SECRET, MEMORY_EXTRA_HINT, ConfigError, load_settings

DEV_SUB = "dev-user"
# The local stack keeps its state in a database of its own on whatever Redis REDIS_URL names, and empties it at
# start: the emulator starts empty too, and state left from an earlier run (or someone else's keys) would answer
# steps that were never taken.
DEV_REDIS_DB = 15


def _own_database(url: str, database: int) -> str:
    """`url` with its database replaced by the dev stack's own (the path of a redis:// URL is the database)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _empty(url: str) -> None:
    with Redis.from_url(url, socket_timeout=2, socket_connect_timeout=0.5) as client:
        client.flushdb()


def _reachable(url: str) -> bool:
    try:
        with Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except (RedisError, OSError, ValueError):
        return False


def run_dev(*, host: str, port: int, emulator_port: int) -> int:
    env = dict(os.environ)
    env.setdefault("YATIVO_BASE_URL", f"http://{host}:{emulator_port}/api/v1")
    env.setdefault("YATIVO_API_KEY", "yativo_dev_key")
    env.setdefault("YATIVO_API_SECRET", "dev-secret")
    if not env.get("AUTH_JWKS_URL"):
        env.setdefault("AUTH_JWT_SECRET", DEV_JWT_SECRET)
    # LOG_FORMAT is left as set: unset, it is console on a terminal and JSON off one, as in production.
    redis_url = env.get("REDIS_URL", DEFAULT_REDIS_URL)
    if not redis_url.startswith("memory://"):
        redis_url = _own_database(redis_url, int(env.get("DEV_REDIS_DB", DEV_REDIS_DB)))
    if not redis_url.startswith("memory://") and not _reachable(redis_url):
        if importlib.util.find_spec("fakeredis") is None:
            raise ConfigError(
                f"Redis at {redis_url} is not reachable and the in-process store needs the 'memory' extra (fakeredis): "
                f"{MEMORY_EXTRA_HINT}, or set REDIS_URL to a Redis that answers"
            )
        print(
            f"warning: Redis at {redis_url} is not reachable; using an in-process store (memory://): one process only, forgotten on exit",
            file=sys.stderr,
        )
        redis_url = "memory://"
    if not redis_url.startswith("memory://"):
        _empty(redis_url)
    env["REDIS_URL"] = redis_url
    settings = load_settings(env)
    configure_logging(settings)

    base = f"http://{host}:{port}"
    token = (
        issue_dev_token(settings.auth_jwt_secret, DEV_SUB)
        if settings.auth_jwt_secret
        else "(AUTH_JWKS_URL is set: bring your own)"
    )
    web = f"{base}{demo.PREFIX}/" if demo.is_built() else "not built: `make web` builds it (needs Node), then restart"
    print(
        "\n".join(
            [
                "Card onboarding BFF - local stack",
                f"  service:   {base}/v1/card-onboarding   (API docs: {base}/schema/swagger, OpenAPI: {base}/schema/openapi.json)",
                f"  web demo:  {web}",
                f"  emulator:  http://{host}:{emulator_port}   (codes it sent: http://{host}:{emulator_port}/_emulator/outbox)",
                f"  redis:     {redis_url}"
                + ("   (the dev stack's own database, emptied at start)" if redis_url != "memory://" else ""),
                f"  token:     {token}",
                f"             (sub {DEV_SUB!r}, valid 24 h)",
                "Try:",
                f"  curl -s -H 'Authorization: Bearer {token}' {base}/v1/card-onboarding",
                "",
            ]
        ),
        flush=True,
    )
    api = demo.mounted(create_app(settings), token=token if settings.auth_jwt_secret else None)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                create_emulator_app(EmulatorConfig()),
                host=host,
                port=emulator_port,
                log_level="warning",
                access_log=False,
                log_config=None,
            )
        ),
        uvicorn.Server(
            uvicorn.Config(api, host=host, port=port, log_level="warning", access_log=False, log_config=None)
        ),
    ]

    async def both() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(both())
    return 0
