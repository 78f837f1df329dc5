"""Runs the service under the production ASGI server, one process per container.

uvicorn with uvloop and httptools, chosen by measurement (README, "Choice of server"): Granian served a
trivial handler faster, but on this service's real path its p99 was five times uvicorn's, it used 50% more
memory idle, and it kills a worker at its shutdown timeout without running the lifespan's clean-up. uvicorn
bounds neither a request's headers nor an idle new connection, so its httptools protocol is served with the
deadlines of service/http/reading.py.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import uvicorn

from service.http.reading import BARE_408, bounded_httptools
from service.settings import Settings

# Shared with the benchmarks' reference handler, so both are served exactly alike.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "log_level": "warning",
    "log_config": None,
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
    "timeout_graceful_shutdown": 10,
    # An idle connection (between requests, or before its first byte) is closed after this many seconds.
    "timeout_keep_alive": 5,
}
DEFAULT_READ_TIMEOUT_SECONDS = Settings().request_read_timeout_seconds


def run(
    app: Any,
    *,
    host: str,
    port: int,
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS,
    late_answer: Callable[[float], bytes] = lambda waited: BARE_408,
) -> None:
    # What start-up made (modules, the app and its routes: ~90k objects) lives as long as the process. Frozen, it is
    # left out of every garbage collection; unfrozen, each full collection walked it again: 71 ms per full collection
    # under load instead of 6.5 ms, a pause every request in flight waited through (BENCHMARKS.md).
    gc.collect()  # what is garbage already is freed first, not frozen for good
    gc.freeze()
    protocol = bounded_httptools(read_timeout_seconds, late_answer)
    uvicorn.run(app, host=host, port=port, http=protocol, **UVICORN_OPTIONS)


def serve(settings: Settings, *, host: str, port: int) -> None:
    # Imported here so that run() alone (the benchmarks' reference handler) does not load the service.
    from service.app import create_app
    from service.http.problems import late_headers_answer
    from service.ops.logs import configure_logging

    configure_logging(settings)
    run(
        create_app(settings),
        host=host,
        port=port,
        read_timeout_seconds=settings.request_read_timeout_seconds,
        late_answer=late_headers_answer,
    )
