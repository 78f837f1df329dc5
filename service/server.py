"""Runs the service under the production ASGI server, one process per container.

uvicorn with uvloop and httptools, chosen by measurement (README, "Choice of server"): Granian served a
trivial handler faster, but on this service's real path its p99 was five times uvicorn's, it used 50% more
memory idle, and it kills a worker at its shutdown timeout without running the lifespan's clean-up.
"""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.logs import configure_logging
from service.settings import Settings


def serve(settings: Settings, *, host: str, port: int) -> None:
    configure_logging(settings)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
