"""The request log line alone: time per line with the production logging set-up, against the level filtered off.

    .venv-bench/bin/python -m bench.logline

The same event service.http.middleware logs, with the production processors and JSON renderer, written by the
production writer to /dev/null inside a running event loop; interleaved runs, medians. Dividing by a request's
cost (BENCHMARKS.md) gives the share of throughput the line takes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import IO

import structlog

from service.ops.logs import configure_logging
from service.settings import load_settings

LINES = 20_000


def configured(level: str, sink: IO[bytes]) -> structlog.typing.FilteringBoundLogger:
    env = {
        "AUTH_JWT_SECRET": "logline-benchmark-secret-0000000000000",
        "REDIS_URL": "memory://",
        "YATIVO_BASE_URL": "http://127.0.0.1:9/api/v1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": level,
    }
    configure_logging(load_settings(env, require_auth=False), stream=sink)
    return structlog.get_logger("service.request")  # type: ignore[no-any-return]


async def per_line_us(level: str, sink: IO[bytes]) -> float:
    log = configured(level, sink)
    structlog.contextvars.bind_contextvars(request_id="9f0c2b7e4d6a4e0f8a1b2c3d4e5f6a7b")
    started = time.perf_counter()
    for i in range(LINES):
        log.info(
            "request",
            method="GET",
            route="/v1/card-onboarding",
            path=None,
            status=200,
            duration_ms=1.23,
            user="0123456789abcdef",
            next_action="done",
            upstream_calls=0,
        )
        if i % 32 == 31:
            await asyncio.sleep(0)  # a tick ends, as between batches of requests: the writer flushes
    elapsed = time.perf_counter() - started
    structlog.contextvars.clear_contextvars()
    return elapsed / LINES * 1e6


def main() -> None:
    runs: dict[str, list[float]] = {"info": [], "warning": []}
    with open(os.devnull, "wb") as sink:
        for _ in range(5):
            for level in runs:
                runs[level].append(asyncio.run(per_line_us(level, sink)))
    on, off = statistics.median(runs["info"]), statistics.median(runs["warning"])
    print(f"request line, logged: {on:.2f} us; filtered off: {off:.2f} us; the line costs {on - off:.2f} us")


if __name__ == "__main__":
    main()
