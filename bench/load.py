"""Load generators: wrk for closed-loop throughput, and an asyncio open-loop client for latency at a fixed rate."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.stack import LOAD_CORE, pinned

LUA = Path(__file__).with_name("tokens.lua")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers plus socket errors


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{label}\s+(\S+)\s*$", out, re.MULTILINE)
    return _ms(match.group(1)) if match else float("nan")


def wrk(url: str, *, tokens: Path | None, offset: int, seconds: float, connections: int) -> WrkResult:
    argv = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            str(LUA),
            url,
            "--",
            str(tokens or ""),
            str(offset),
        ],
        LOAD_CORE,
    )
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests_match = re.search(r"(\d+) requests in", out)
    if rps_match is None or requests_match is None:
        raise RuntimeError(f"unexpected wrk output: {out}")
    rps, requests = float(rps_match.group(1)), int(requests_match.group(1))
    # The "Latency Distribution" block: lines holding just a percentile and a time (absent if nothing completed).
    p50 = _percentile(out, "50%")
    p99 = _percentile(out, "99%")
    bad = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        bad += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        bad += sum(int(x) for x in m.groups())
    return WrkResult(rps, requests, p50, p99, bad)


@dataclass
class OpenLoopResult:
    p50_ms: float
    p99_ms: float
    sent: int
    bad: int
    late_ms: float  # how far the generator itself fell behind its schedule at worst


async def open_loop(
    url: str,
    headers: Sequence[dict[str, str]],
    *,
    warm_url: str,
    rate: float,
    seconds: float,
    connections: int = 16,
    record: list[tuple[float, float]] | None = None,
) -> OpenLoopResult:
    """Fire GETs at fixed intervals whatever the answers do; latency counts from the scheduled send time.

    Timing from the schedule rather than from the actual send keeps queueing visible (no coordinated omission):
    a request that had to wait for a free connection or a busy server is charged for the wait. `record`, if
    given, receives each request's scheduled send (wall clock) and latency in ms.
    """
    wall = time.time() - time.perf_counter()
    total = int(rate * seconds)
    latencies: list[float] = []
    bad = 0
    late = 0.0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, scheduled: float) -> None:
            nonlocal bad
            try:
                async with session.get(url, headers=headers[index % len(headers)]) as response:
                    await response.read()
                    if response.status != 200:
                        bad += 1
            except aiohttp.ClientError:
                bad += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)
            if record is not None:
                record.append((wall + scheduled, latencies[-1]))

        # Warm the connections first, so connection set-up is not part of the measurement.
        await asyncio.gather(*(_get(session, warm_url) for _ in range(connections)))
        tasks = []
        start = time.perf_counter() + 0.05
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay * 1000)
            tasks.append(asyncio.ensure_future(one(index, scheduled)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return OpenLoopResult(_pct(latencies, 50), _pct(latencies, 99), total, bad, late)


async def _get(session: aiohttp.ClientSession, url: str) -> None:
    try:
        async with session.get(url) as response:
            await response.read()
    except aiohttp.ClientError:
        pass


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
