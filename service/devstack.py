"""`python -m service dev`: the emulator and the service together in one process, for local use."""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn

from service.app import create_app
from service.emulator import EmulatorConfig, create_emulator_app
from service.settings import load_settings

DEV_JWT_SECRET = "dev-only-secret-never-use-in-production-000"


def run_dev(*, host: str, port: int, emulator_port: int) -> int:
    env = dict(os.environ)
    env.setdefault("YATIVO_BASE_URL", f"http://{host}:{emulator_port}/api/v1")
    env.setdefault("YATIVO_API_KEY", "yativo_dev_key")
    env.setdefault("YATIVO_API_SECRET", "dev-secret")
    env.setdefault("AUTH_JWT_SECRET", DEV_JWT_SECRET)
    settings = load_settings(env)
    servers = [
        uvicorn.Server(uvicorn.Config(create_emulator_app(EmulatorConfig()), host=host, port=emulator_port, log_level="warning", access_log=False)),
        uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False)),
    ]
    print(f"emulator: http://{host}:{emulator_port}  (outbox: http://{host}:{emulator_port}/_emulator/outbox)", file=sys.stderr)
    print(f"service:  http://{host}:{port}", file=sys.stderr)

    async def both() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(both())
    return 0
