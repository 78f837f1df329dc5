"""Where the upstream path's latency tail comes from: `python -m bench.tail [--debug]`.

Starts Redis, the emulator and the service with probes (bench/probed.py), puts users at an open identity check,
paces GETs that each re-read the KYC status (open loop, as in `make bench`), then lines up every request slower
than the bar with what the service's process did meanwhile: a garbage collection, an event-loop stall (the loop
woke late), an asyncio slow callback (--debug), or none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

import aiohttp

from bench.load import open_loop
from bench.stack import (
    JWT_SECRET,
    LOAD_CORE,
    Proc,
    cores,
    free_port,
    python_module,
    service_env,
    start_emulator,
    start_redis,
)
from bench.users import Driver, Users


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tail", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="asyncio debug mode in the service (slows it)")
    parser.add_argument("--users", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bar-ms", type=float, default=8.0, help="a request slower than this is in the tail")
    args = parser.parse_args()
    if cores() >= 2:
        os.sched_setaffinity(0, {LOAD_CORE})
    workdir = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    out = workdir / "probes.json"
    procs: list[Proc] = []
    try:
        redis_proc = start_redis()
        emulator = start_emulator()
        procs += [redis_proc, emulator]
        port = free_port()
        argv = python_module(
            "bench.probed", "--port", str(port), "--out", str(out), *(["--debug"] if args.debug else [])
        )
        service = Proc("service-probed", argv, port, env=service_env(redis_proc, emulator))
        procs.append(service)

        async def prepare() -> list[str]:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                return await Driver(session, service.url, emulator.url, JWT_SECRET).waiting_for_kyc(
                    args.users, prefix="tail"
                )

        users = Users(asyncio.run(prepare()), JWT_SECRET, workdir / "tail.tokens")
        record: list[tuple[float, float]] = []
        n = int(args.rate * args.seconds)
        asyncio.run(
            open_loop(
                service.url + "/v1/card-onboarding",
                users.take(n),
                warm_url=service.url + "/livez",
                rate=args.rate,
                seconds=args.seconds,
                record=record,
            )
        )
        service.stop()  # the probes write their file as it exits
        probes = json.loads(out.read_text())
    finally:
        for proc in reversed(procs):
            proc.stop()
    report(record, probes, args.bar_ms)
    return 0


def report(record: list[tuple[float, float]], probes: dict[str, list[list[object]]], bar_ms: float) -> None:
    first = min(t for t, _ in record)
    last = max(t + ms / 1000 for t, ms in record)
    gcs = [(float(t), float(ms), int(g)) for t, ms, g, _ in probes["gc"] if first <= float(t) <= last]  # type: ignore[misc]
    stalls = [
        (float(t) - float(ms) / 1000, float(ms), float(cpu))  # type: ignore[arg-type]
        for t, ms, cpu in probes["stalls"]
        if first <= float(t) <= last  # type: ignore[arg-type]
    ]
    slow = [(float(t), str(m)) for t, m in probes["slow"] if first <= float(t) <= last]  # type: ignore[misc]
    latencies = sorted(ms for _, ms in record)
    print(
        f"{len(record)} requests, p50 {latencies[len(latencies) // 2]:.2f} ms, p99 {latencies[int(len(latencies) * 0.99)]:.2f} ms"
    )
    for gen in (0, 1, 2):
        pauses = [ms for _, ms, g in gcs if g == gen]
        if pauses:
            print(
                f"gc generation {gen}: {len(pauses)} collections, {sum(pauses):.1f} ms in all, longest {max(pauses):.2f} ms"
            )
    if stalls:
        off_cpu = [s for s in stalls if s[2] < 0.5 * s[1]]
        print(
            f"event-loop stalls over 2 ms: {len(stalls)}, {sum(ms for _, ms, _ in stalls):.0f} ms in all, longest "
            f"{max(ms for _, ms, _ in stalls):.1f} ms; {len(off_cpu)} of them ({sum(s[1] for s in off_cpu):.0f} ms) "
            "with the process getting less than half the CPU meanwhile (descheduled: the machine was busy)"
        )
    tail = [(t, ms) for t, ms in record if ms > bar_ms]
    causes = {"a gc pause >= 1 ms": 0, "a stall off the CPU": 0, "a stall on the CPU": 0, "neither": 0}
    for t, ms in tail:
        end = t + ms / 1000
        in_gc = any(g_t < end and g_t + g_ms / 1000 > t and g_ms >= 1 for g_t, g_ms, _ in gcs)
        hit = [s for s in stalls if s[0] < end and s[0] + s[1] / 1000 > t]
        off = any(cpu < 0.5 * ms for _, ms, cpu in hit)
        cause = (
            "a gc pause >= 1 ms"
            if in_gc
            else "a stall off the CPU"
            if off
            else "a stall on the CPU"
            if hit
            else "neither"
        )
        causes[cause] += 1
    print(f"requests over {bar_ms:g} ms: {len(tail)}; overlapping " + ", ".join(f"{k}: {v}" for k, v in causes.items()))
    if slow:
        print(f"asyncio slow callbacks (over 2 ms): {len(slow)}; the first few:")
        for _, message in slow[:8]:
            print("  " + message)


if __name__ == "__main__":
    raise SystemExit(main())
