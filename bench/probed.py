"""The service with probes for where its latency tail comes from: garbage collections, event-loop stalls and
(with --debug) asyncio's slow-callback reports, each with its wall-clock time, written as JSON when it stops."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import logging
import os
import time
from typing import Any

from service.app import create_app
from service.ops.logs import configure_logging
from service.server import run
from service.settings import load_settings

LAG_TICK = 0.001  # the probe's sleep; a wake-up later than this by LAG_REPORT is an event-loop stall
LAG_REPORT = 0.002


class Probes:
    def __init__(self, out: str, debug: bool) -> None:
        self.out = out
        self.debug = debug
        self.gcs: list[tuple[float, float, int, int]] = []  # wall start, ms, generation, collected
        # wall time the loop woke, ms late, ms of CPU the process got meanwhile (far less than the delay: the
        # process was not running, the machine was busy elsewhere; about as much: Python was busy in this process)
        self.stalls: list[tuple[float, float, float]] = []
        self.slow: list[tuple[float, str]] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None
        gc.callbacks.append(self._gc)
        atexit.register(self.dump)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._gc_started) * 1000
            self.gcs.append((time.time() - ms / 1000, ms, info["generation"], info["collected"]))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._lag())

    def debugging(self) -> None:
        """Debug mode from the first /livez (the open loop's warm-up) on, so the users' set-up runs at full speed."""
        loop = asyncio.get_running_loop()
        if self.debug and not loop.get_debug():
            loop.set_debug(True)
            loop.slow_callback_duration = 0.002
            probes = self

            class Slow(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    probes.slow.append((time.time(), record.getMessage()[:300]))

            logging.getLogger("asyncio").addHandler(Slow(logging.WARNING))

    async def _lag(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(LAG_TICK)
            late = time.perf_counter() - before - LAG_TICK
            if late > LAG_REPORT:
                self.stalls.append((time.time(), late * 1000, (time.process_time() - cpu) * 1000))

    def dump(self) -> None:
        with open(self.out, "w") as f:
            json.dump({"gc": self.gcs, "stalls": self.stalls, "slow": self.slow}, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--debug", action="store_true", help="asyncio debug mode: report callbacks over 2 ms")
    args = parser.parse_args()
    settings = load_settings(os.environ)
    configure_logging(settings)
    probes = Probes(args.out, args.debug)
    inner = create_app(settings)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        probes.start()
        if scope["type"] == "http" and scope["path"] == "/livez":
            probes.debugging()
        if scope["type"] != "lifespan":
            await inner(scope, receive, send)
            return

        async def sent(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                probes.dump()  # the server may not run exit handlers
            await send(message)

        await inner(scope, receive, sent)

    run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
