"""A/B of the upstream call path on httpx and on httpx2: the service's YativoClient (aiohttp transport, retries,
breaker, metrics, the upstream_call log line) looking a customer up at the emulator, rounds interleaved A B A B.

httpx2 is not in the lock; run with it added for the run only:

    .tools/bin/uv run --no-sync --with httpx2==2.16.2 python -m bench.httpx2_ab

The B rounds call `httpx2.alias_httpx()` before anything imports httpx, so the service, httpx-aiohttp and the
OpenTelemetry instrumentation all run on httpx2's classes (neither integration imports httpx2 itself). Each round
is its own process, pinned to one core, the emulator to the other (bench.stack); the client's CPU time per call is the measure
(the emulator is the same for both), throughput is reported too. Prints the medians and B / A.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench.stack import SERVER_CORE, pinned, start_emulator

VARIANTS = ("httpx", "httpx2")


async def _calls(base: str, total: int, concurrency: int) -> dict[str, float]:
    import httpx

    from service.ops.logs import configure_logging
    from service.settings import load_settings
    from service.yativo.client import YativoClient

    configure_logging(load_settings({}, require_auth=False), stream=open(os.devnull, "wb"))  # noqa: SIM115, ASYNC230
    async with YativoClient(base, "bench", "bench") as client:
        await client.onboard("ab@example.com", "usr_ab")

        async def worker(count: int) -> None:
            for _ in range(count):
                assert await client.lookup_customer(external_id="usr_ab") is not None

        await asyncio.gather(*(worker(200 // concurrency) for _ in range(concurrency)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = (total // concurrency) * concurrency
    return {"cpu_us_per_call": cpu / done * 1e6, "calls_per_s": done / wall, "module": httpx.__name__}


def child(variant: str, base: str, total: int, concurrency: int) -> None:
    if variant == "httpx2":
        import httpx2

        httpx2.alias_httpx()
    import uvloop

    result = uvloop.run(_calls(base, total, concurrency))
    print(json.dumps({"variant": variant, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant")
    parser.add_argument("--calls", type=int, default=4000, help="measured calls per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base, args.calls, args.concurrency)
        return
    emulator = start_emulator()  # on the load core; each client round runs on the server core
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    try:
        base = f"{emulator.url}/api/v1"
        for _ in range(args.rounds):
            for variant in VARIANTS:
                argv = [sys.executable, "-m", "bench.httpx2_ab", "--child", variant, "--base", base]
                argv += ["--calls", str(args.calls), "--concurrency", str(args.concurrency)]
                out = subprocess.run(pinned(argv, SERVER_CORE), capture_output=True, text=True, check=True, timeout=300)
                result = json.loads(out.stdout.splitlines()[-1])
                assert result["module"] == variant, result  # B really ran on httpx2's classes
                results[variant].append(result)
                # The next round onboards the same customer again: the emulator starts it afresh.
                urllib.request.urlopen(urllib.request.Request(f"{emulator.url}/_emulator/reset", method="POST"))  # noqa: S310
    finally:
        emulator.stop()
    summary: dict[str, Any] = {}
    for variant, rounds in results.items():
        summary[variant] = {
            key: statistics.median(r[key] for r in rounds) for key in ("cpu_us_per_call", "calls_per_s")
        }
    # Paired by round (B ran right after A), so a load change on the machine between rounds cancels out.
    pairs = list(zip(results["httpx"], results["httpx2"], strict=True))
    for key in ("cpu_us_per_call", "calls_per_s"):
        ratios = sorted(b[key] / a[key] for a, b in pairs)
        summary[f"httpx2 / httpx, {key}"] = {
            "median": statistics.median(ratios),
            "range": [round(ratios[0], 3), round(ratios[-1], 3)],
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
