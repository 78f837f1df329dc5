"""`make bench`: starts the whole stack, runs the comparisons interleaved (A B A B, medians) and prints the table.

Closed-loop throughput comes from wrk (one thread on the load core, a Lua script for the bearer tokens); added
latency from an asyncio open-loop client at a fixed rate, timed from each request's scheduled send. Side effects
are counted, not assumed: Redis commands from the throwaway server's INFO commandstats deltas, upstream calls
from the emulator's call log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis

from bench.load import OpenLoopResult, WrkResult, median, open_loop, wrk
from bench.stack import (
    JWT_SECRET,
    LOAD_CORE,
    Proc,
    cores,
    export,
    service_env,
    start_emulator,
    start_floor,
    start_libraries,
    start_redis,
    start_service,
    start_trivial,
)
from bench.users import Driver, Users
from bench.walk import RouteClass, summary, table, walk

KYC_STATUS_GLOB = "/yativo-card/customers/*/kyc-status"


@dataclass
class Mode:
    rounds: int
    seconds: float
    connections: int
    kyc_users: int
    done_users: int
    latency_rate: float
    latency_seconds: float
    growth_requests: int  # the "first and second" block of the growth check
    walk_users: int  # users walked from nothing to `done`, one request at a time, for the Redis cost per route


MODES = {
    "quick": Mode(
        rounds=2,
        seconds=2,
        connections=64,
        kyc_users=2500,
        done_users=5,
        latency_rate=100,
        latency_seconds=3,
        growth_requests=20_000,
        walk_users=8,
    ),
    "default": Mode(
        rounds=5,
        seconds=5,
        connections=64,
        kyc_users=8_000,
        done_users=20,
        latency_rate=200,
        latency_seconds=10,
        growth_requests=200_000,
        walk_users=40,
    ),
    "long": Mode(
        rounds=7,
        seconds=10,
        connections=64,
        kyc_users=12_000,
        done_users=20,
        latency_rate=200,
        latency_seconds=20,
        growth_requests=1_000_000,
        walk_users=40,
    ),
}


class Counters:
    """Side effects of a run: Redis commands by name (INFO commandstats) and upstream calls (emulator log)."""

    def __init__(self, redis_port: int, emulator_url: str) -> None:
        self._redis = redis.Redis(port=redis_port)
        self._emulator = httpx.Client(base_url=emulator_url, timeout=60)

    def redis_calls(self) -> dict[str, int]:
        stats = self._redis.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info"}

    def upstream_calls(self) -> int:
        return len(self._emulator.get("/_emulator/calls").json()["calls"])

    def snapshot(self) -> tuple[dict[str, int], int]:
        return self.redis_calls(), self.upstream_calls()

    def settled(self) -> tuple[dict[str, int], int]:
        """Counts once the server has finished what was still in flight when the load stopped (at most 3 s)."""
        last = self.snapshot()
        for _ in range(15):
            time.sleep(0.2)
            now = self.snapshot()
            if now == last:
                break
            last = now
        return last

    def close(self) -> None:
        self._redis.close()
        self._emulator.close()


@dataclass
class Sample:
    result: WrkResult
    redis_per_request: dict[str, float]
    upstream_per_request: float


@dataclass
class Scenario:
    name: str
    url: str
    users: Users | None
    samples: list[Sample] = field(default_factory=list)

    def rps(self) -> float:
        return median([s.result.rps for s in self.samples])

    def redis(self) -> str:
        per = {}
        for sample in self.samples:
            for name, value in sample.redis_per_request.items():
                per.setdefault(name, []).append(value)
        total = median([sum(s.redis_per_request.values()) for s in self.samples])
        parts = ", ".join(f"{n} {median(v):.2f}" for n, v in sorted(per.items()) if median(v) >= 0.005)
        return f"{total:.2f}" + (f" ({parts})" if parts else "")

    def redis_total(self) -> float:
        return median([sum(s.redis_per_request.values()) for s in self.samples])

    def upstream(self) -> float:
        return median([s.upstream_per_request for s in self.samples])

    def latency(self) -> str:
        return f"{median([s.result.p50_ms for s in self.samples]):.2f} / {median([s.result.p99_ms for s in self.samples]):.2f}"

    def bad(self) -> int:
        return sum(s.result.bad for s in self.samples)


def run_wrk(scenario: Scenario, counters: Counters, mode: Mode, seconds: float | None = None) -> Sample:
    before_redis, before_up = counters.snapshot()
    offset = scenario.users.cursor if scenario.users else 0
    result = wrk(
        scenario.url,
        tokens=scenario.users.path if scenario.users else None,
        offset=offset,
        seconds=seconds or mode.seconds,
        connections=mode.connections,
    )
    if scenario.users:
        # Requests still in flight when wrk stopped were sent too: skip past them as well.
        scenario.users.advance(result.requests + mode.connections)
    after_redis, after_up = counters.settled()
    n = max(result.requests, 1)
    redis_per = {k: (after_redis.get(k, 0) - before_redis.get(k, 0)) / n for k in after_redis}
    return Sample(result, {k: v for k, v in redis_per.items() if v}, (after_up - before_up) / n)


async def burst(service: Proc, token: str, emulator: str, counters: Counters, n: int = 100) -> dict[str, float]:
    """n identical requests for one user at once, while the upstream takes 50 ms: how many upstream calls?"""
    async with httpx.AsyncClient(base_url=emulator) as control:
        fault = (await control.post("/_emulator/faults", json={"path": KYC_STATUS_GLOB, "latencyMs": 50})).json()
    try:
        before = counters.upstream_calls()
        answers, started = await _at_once(
            service.url + "/v1/card-onboarding", {"Authorization": f"Bearer {token}"}, n, warm=service.url + "/livez"
        )
        calls = counters.upstream_calls() - before
    finally:
        async with httpx.AsyncClient(base_url=emulator) as control:
            await control.delete(f"/_emulator/faults/{fault['id']}")
    finished = sorted(at for _, at in answers)
    return {
        "upstream_calls": calls,
        "leader_ms": (finished[0] - started) * 1000,
        "spread_ms": (finished[-1] - finished[0]) * 1000,
        "non_200": sum(1 for status, _ in answers if status != 200),
    }


async def spread(url: str, n: int = 100) -> float:
    """First to last answer of n requests sent at once: the floor under the followers' spread (median of 5)."""
    spreads = []
    for _ in range(5):
        answers, _ = await _at_once(url, None, n, warm=url)
        finished = sorted(at for _, at in answers)
        spreads.append((finished[-1] - finished[0]) * 1000)
    return median(spreads)


async def _at_once(
    url: str, headers: dict[str, str] | None, n: int, *, warm: str
) -> tuple[list[tuple[int, float]], float]:
    """n requests sent together on n connections opened beforehand (with `warm`); each answer's status and time."""
    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(target: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
            async with session.get(target, headers=headers) as response:
                await response.read()
                return response.status, time.perf_counter()

        await asyncio.gather(*(get(warm) for _ in range(n)))  # n open connections
        started = time.perf_counter()
        answers = await asyncio.gather(*(get(url, headers) for _ in range(n)))
    return list(answers), started


def machine(nproc: int) -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in (
            "litestar",
            "uvicorn",
            "uvloop",
            "httptools",
            "httpx",
            "httpx-aiohttp",
            "aiohttp",
            "redis",
            "msgspec",
            "structlog",
        )
    )
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return {
        "cores": f"{os.cpu_count()} (nproc {nproc})",
        "cpu": model,
        "python": platform.python_version(),
        "packages": versions,
        "tools": f"redis-server {redis_version.removeprefix('v=')}, {wrk_version}",
        "load": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a short smoke run (numbers are rough)")
    group.add_argument("--long", action="store_true", help="longer rounds and the 2-million-request growth check")
    parser.add_argument("--pools", action="store_true", help="only compare upstream transports and pool limits")
    parser.add_argument("--growth-only", action="store_true", help="only the memory growth check, e.g. with --long")
    parser.add_argument("--walk-only", action="store_true", help="only the Redis cost by route class over the walks")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the service as of git revision REV (e.g. main) beside this one: the before of a change",
    )
    args = parser.parse_args()
    mode_name = "quick" if args.quick else "long" if args.long else "default"
    mode = MODES[mode_name]
    nproc = cores()
    if nproc >= 2:
        os.sched_setaffinity(0, {LOAD_CORE})  # the open-loop client and the driver stay off the server core

    procs: list[Proc] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    try:
        say(f"mode {mode_name}: {mode}")
        redis_proc = start_redis()
        procs.append(redis_proc)
        emulator = start_emulator()
        procs.append(emulator)
        env = service_env(redis_proc, emulator)
        log_file = (workdir / "service.log").open("wb")
        service = start_service("service", env, log=log_file)
        quiet = start_service("service-log-off", {**env, "LOG_LEVEL": "warning"})
        # The log line's cost is measured between two processes that differ only in it: this twin serves what the
        # log-off one serves (the fresh GET), while `service` also carries the upstream runs' connections and caches.
        twin_log = (workdir / "service-log-on.log").open("wb")
        loud = start_service("service-log-on", env, log=twin_log)
        stock = start_service("service-stock-httpx", env, variant=["--transport", "httpx"])
        trivial = start_trivial()
        procs += [service, quiet, loud, stock, trivial]
        base = None
        if args.baseline:
            base = start_service(f"service at {args.baseline}", env, source=export(args.baseline))
            procs.append(base)
        counters = Counters(redis_proc.port, emulator.url)
        if args.pools or args.growth_only:
            for proc in (quiet, loud, stock, trivial):
                proc.stop()
            if args.pools:
                return compare_pools(service, emulator, env, counters, mode, workdir, procs)
            return growth_only(service, emulator, counters, mode, workdir)

        say(f"walking {mode.walk_users} users from nothing to `done`, one request at a time ...")
        walks = {
            "this": asyncio.run(
                walk(service.url, emulator.url, redis_proc.port, JWT_SECRET, mode.walk_users, prefix="walk")
            )
        }
        if base is not None:
            walks[args.baseline] = asyncio.run(
                walk(base.url, emulator.url, redis_proc.port, JWT_SECRET, mode.walk_users, prefix="walk-base")
            )
        if args.walk_only:
            print_walks(walks)
            return 0
        say(f"driving {mode.done_users} users to `done` and {mode.kyc_users} to an open identity check ...")
        t0 = time.perf_counter()
        done_subs, kyc_subs = asyncio.run(drive_users(service, emulator, mode))
        say(f"  users ready in {time.perf_counter() - t0:.1f} s")
        done = Users(done_subs, JWT_SECRET, workdir / "done.tokens")
        kyc = Users(kyc_subs, JWT_SECRET, workdir / "kyc.tokens")
        snap_key, card_ids = floor_inputs(redis_proc, emulator)
        customers = Users(card_ids, None, workdir / "customers.ids")
        floor = start_floor(redis_proc, emulator, snap_key, "aiohttp")
        floor_stock = start_floor(redis_proc, emulator, snap_key, "httpx")
        procs += [floor, floor_stock]

        api = "/v1/card-onboarding"
        h = Scenario("H: trivial handler", trivial.url + "/", None)
        livez = Scenario("the service's /livez", service.url + "/livez", None)
        fresh = Scenario("GET fresh snapshot", service.url + api, done)
        fresh_quiet = Scenario("GET fresh snapshot, request log off", quiet.url + api, done)
        fresh_loud = Scenario("GET fresh snapshot, request log on (its twin)", loud.url + api, done)
        upstream = Scenario("GET with KYC re-read (upstream)", service.url + api, kyc)
        upstream_stock = Scenario("same, stock httpx transport", stock.url + api, kyc)
        floor_read = Scenario("floor: one Redis GET", floor.url + "/redis", None)
        floor_up = Scenario("floor: one upstream GET", floor.url + "/upstream", customers)
        floor_up_redis = Scenario(
            "floor: one upstream GET in 3 Redis round trips", floor.url + "/upstream-redis", customers
        )
        floor_up_stock = Scenario("floor: one upstream GET, stock httpx", floor_stock.url + "/upstream", customers)
        # The upstream scenarios are kept apart, so the users they share rest between them.
        scenarios = [
            h,
            upstream,
            fresh,
            livez,
            floor_up,
            floor_read,
            floor_up_redis,
            upstream_stock,
            fresh_loud,
            fresh_quiet,
        ]
        baseline: list[Scenario] = []
        if base is not None:
            baseline = [
                Scenario(f"GET with KYC re-read (upstream), at {args.baseline}", base.url + api, kyc),
                Scenario(f"GET fresh snapshot, at {args.baseline}", base.url + api, done),
            ]
            scenarios.insert(4, baseline[1])
            scenarios.insert(len(scenarios) - 2, baseline[0])
        scenarios.append(floor_up_stock)
        say("warming up ...")
        for scenario in scenarios:
            run_wrk(scenario, counters, mode, seconds=1)
        for r in range(mode.rounds):
            for scenario in scenarios:
                scenario.samples.append(run_wrk(scenario, counters, mode))
            say(f"  round {r + 1}: " + ", ".join(f"{s.samples[-1].result.rps:,.0f}" for s in scenarios))

        say("the log line: the twins paired, A B B A ...")
        log_pairs = paired(fresh_loud, fresh_quiet, counters, mode)

        say("open-loop latency: the emulator directly vs through the service ...")
        latency = asyncio.run(added_latency(service, emulator, kyc, floor, customers, mode, counters, base))

        say("100 concurrent identical requests for one user ...")
        one = kyc.take(1)[0]["Authorization"].removeprefix("Bearer ")
        flight = asyncio.run(burst(service, one, emulator.url, counters))
        flight["h_spread_ms"] = asyncio.run(spread(trivial.url + "/"))

        say(f"growth: 2 x {mode.growth_requests:,} requests of the fresh GET ...")
        growth = grow(service, Scenario("growth", service.url + api, done), counters, mode)
        peak_kib = service.status_kib("VmHWM")
        # The libraries alone: a process that loaded them serves H for one round of wrk.
        libraries = start_libraries(env)
        procs.append(libraries)
        run_wrk(Scenario("H with the libraries", libraries.url + "/", None), counters, mode, seconds=mode.seconds)
        peaked = (service, *([base] if base else []), quiet, loud, stock, trivial, libraries, floor, floor_stock)
        peaks = {p.name: p.status_kib("VmHWM") for p in peaked}

        log_file.close()
        twin_log.close()
        report(
            nproc,
            mode_name,
            mode,
            [
                h,
                fresh,
                fresh_loud,
                fresh_quiet,
                upstream,
                upstream_stock,
                floor_read,
                floor_up,
                floor_up_redis,
                floor_up_stock,
                livez,
            ],
            baseline,
            walks,
            latency,
            log_pairs,
            flight,
            growth,
            peak_kib,
            peaks,
            started_at,
            load_before,
        )
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop()


POOLS = [
    ("httpx pool, max 200 / keep-alive 50 (the former default)", ["--transport", "httpx"]),
    (
        "httpx pool, max 64 / keep-alive 64",
        ["--transport", "httpx", "--max-connections", "64", "--max-keepalive", "64"],
    ),
    ("aiohttp pool, limit 200 (the default)", ["--transport", "aiohttp"]),
    ("aiohttp pool, limit 64", ["--transport", "aiohttp", "--max-connections", "64"]),
]


def compare_pools(
    service: Proc, emulator: Proc, env: dict[str, str], counters: Counters, mode: Mode, workdir: Path, procs: list[Proc]
) -> int:
    """The upstream-calling GET on each transport and pool setting, interleaved; prints one table."""
    say(f"driving {mode.kyc_users} users to an open identity check ...")
    kyc_subs = asyncio.run(drive_kyc(service, emulator, mode))
    kyc = Users(kyc_subs, JWT_SECRET, workdir / "kyc.tokens")
    scenarios = []
    for name, args in POOLS:
        proc = start_service(name, env, variant=args)
        procs.append(proc)
        scenarios.append(Scenario(name, proc.url + "/v1/card-onboarding", kyc))
    for scenario in scenarios:
        run_wrk(scenario, counters, mode, seconds=1)
    for r in range(mode.rounds):
        for scenario in scenarios:
            scenario.samples.append(run_wrk(scenario, counters, mode))
        say(f"  round {r + 1}: " + ", ".join(f"{s.samples[-1].result.rps:,.0f}" for s in scenarios))
    print()
    print(
        f"## Upstream transports and pools ({mode.rounds} interleaved rounds of wrk -t1 -c{mode.connections} "
        f"-d{mode.seconds:g}s, medians; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])})"
    )
    print()
    print("| Transport | req/s | p50 / p99 ms | upstream calls/req | failed |")
    print("|---|---|---|---|---|")
    for s in scenarios:
        print(f"| {s.name} | {s.rps():,.0f} | {s.latency()} | {s.upstream():.2f} | {s.bad()} |")
    return 0


def floor_inputs(redis_proc: Proc, emulator: Proc) -> tuple[str, list[str]]:
    """A real snapshot key for the Redis floor, and the open identity checks' customer ids for the upstream one."""
    client = redis.Redis(port=redis_proc.port)
    try:
        snap_key = next(iter(client.scan_iter("bff:*:snap", count=1000))).decode()
    finally:
        client.close()
    customers = httpx.get(f"{emulator.url}/_emulator/customers", timeout=60).json()["customers"]
    return snap_key, [c["yativo_card_id"] for c in customers if c["email"].startswith("bench-kyc-")]


def growth_only(service: Proc, emulator: Proc, counters: Counters, mode: Mode, workdir: Path) -> int:
    say(f"driving {mode.done_users} users to `done` ...")
    done = Users(asyncio.run(drive_done(service, emulator, mode)), JWT_SECRET, workdir / "done.tokens")
    say(f"growth: 2 x {mode.growth_requests:,} requests of the fresh GET ...")
    growth = grow(service, Scenario("growth", service.url + "/v1/card-onboarding", done), counters, mode)
    print(growth_line(growth, mode))
    print(f"Peak RSS (VmHWM) of the service: {service.status_kib('VmHWM') / 1024:.1f} MiB.")
    return 0


async def drive_done(service: Proc, emulator: Proc, mode: Mode) -> list[str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        driver = Driver(session, service.url, emulator.url, JWT_SECRET)
        return await driver.done(mode.done_users, prefix="bench-done")


async def drive_kyc(service: Proc, emulator: Proc, mode: Mode) -> list[str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        driver = Driver(session, service.url, emulator.url, JWT_SECRET)
        return await driver.waiting_for_kyc(mode.kyc_users, prefix="bench-kyc")


async def drive_users(service: Proc, emulator: Proc, mode: Mode) -> tuple[list[str], list[str]]:
    return await drive_done(service, emulator, mode), await drive_kyc(service, emulator, mode)


async def added_latency(
    service: Proc,
    emulator: Proc,
    kyc: Users,
    floor: Proc,
    floor_users: Users,
    mode: Mode,
    counters: Counters,
    base: Proc | None = None,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=emulator.url) as control:
        token = (await control.post("/api/v1/auth/token", json={"api_key": "b", "api_secret": "b"})).json()
    upstream_auth = {"Authorization": f"Bearer {token['access_token']}"}
    card_id = floor_users.tokens[0]  # the floor's users are the open identity checks' customer ids
    direct: list[OpenLoopResult] = []
    via: list[OpenLoopResult] = []
    floored: list[OpenLoopResult] = []
    floored_redis: list[OpenLoopResult] = []
    based: list[OpenLoopResult] = []
    upstream: list[float] = []
    n = int(mode.latency_rate * mode.latency_seconds)

    async def paced(url: str, headers: list[dict[str, str]], warm_url: str) -> OpenLoopResult:
        return await open_loop(url, headers, warm_url=warm_url, rate=mode.latency_rate, seconds=mode.latency_seconds)

    for _ in range(max(3, mode.rounds)):
        # The direct call is the same upstream read the service makes, with the service's own kind of token.
        direct.append(
            await paced(
                f"{emulator.url}/api/v1/yativo-card/customers/{card_id}/kyc-status",
                [upstream_auth],
                f"{emulator.url}/_emulator/clock",
            )
        )
        before = counters.upstream_calls()
        via.append(await paced(service.url + "/v1/card-onboarding", kyc.take(n), service.url + "/livez"))
        upstream.append((counters.upstream_calls() - before) / n)
        floored.append(await paced(floor.url + "/upstream", floor_users.take(n), floor.url + "/redis"))
        floored_redis.append(await paced(floor.url + "/upstream-redis", floor_users.take(n), floor.url + "/redis"))
        if base is not None:
            based.append(await paced(base.url + "/v1/card-onboarding", kyc.take(n), base.url + "/livez"))
    return {
        "base_p50": median([r.p50_ms for r in based]),
        "base_p99": median([r.p99_ms for r in based]),
        "floor_p50": median([r.p50_ms for r in floored]),
        "floor_p99": median([r.p99_ms for r in floored]),
        "floor_redis_p50": median([r.p50_ms for r in floored_redis]),
        "floor_redis_p99": median([r.p99_ms for r in floored_redis]),
        "direct_p50": median([r.p50_ms for r in direct]),
        "direct_p99": median([r.p99_ms for r in direct]),
        "via_p50": median([r.p50_ms for r in via]),
        "via_p99": median([r.p99_ms for r in via]),
        "upstream": median(upstream),
        "bad": sum(r.bad for r in direct + via + floored + floored_redis + based),
        "late_ms": max(r.late_ms for r in direct + via + floored + floored_redis + based),
    }


def grow(service: Proc, scenario: Scenario, counters: Counters, mode: Mode) -> dict[str, float]:
    rss: list[int] = []
    done = 0
    for block in (1, 2):
        while done < block * mode.growth_requests:
            sample = run_wrk(scenario, counters, mode, seconds=min(10.0, max(2.0, mode.growth_requests / 20_000)))
            done += sample.result.requests
            scenario.samples.append(sample)
        rss.append(service.status_kib("VmRSS"))
    return {"requests": done, "rss1_kib": rss[0], "rss2_kib": rss[1], "bad": scenario.bad()}


def paired(a: Scenario, b: Scenario, counters: Counters, mode: Mode) -> list[float]:
    """Throughput ratios a/b of back-to-back runs, in A B B A order so a drifting machine favours neither side.

    On this kind of machine two runs of one process a minute apart differ by 10% or more; a pair run seconds
    apart shares the machine's state, so the median of the pairs' ratios is a steadier estimate than the ratio
    of two medians."""
    ratios = []
    for i in range(2 * mode.rounds):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        x = run_wrk(first, counters, mode).result.rps
        y = run_wrk(second, counters, mode).result.rps
        ratios.append(x / y if first is a else y / x)
    return ratios


def growth_line(growth: dict[str, float], mode: Mode) -> str:
    growth_kib = growth["rss2_kib"] - growth["rss1_kib"]
    return (
        f"Growth: RSS {growth['rss1_kib'] / 1024:.1f} MiB after the first {mode.growth_requests:,} requests, "
        f"{growth['rss2_kib'] / 1024:.1f} MiB after the second ({growth['requests']:,.0f} in all; "
        f"{growth['bad']:.0f} failed): {growth_kib / 1024:+.1f} MiB (target <= +1 MiB) -> {verdict(growth_kib <= 1024)}"
    )


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(
    nproc: int,
    mode_name: str,
    mode: Mode,
    scenarios: list[Scenario],
    baseline: list[Scenario],
    walks: dict[str, dict[str, RouteClass]],
    latency: dict[str, Any],
    log_pairs: list[float],
    flight: dict[str, float],
    growth: dict[str, float],
    peak_kib: int,
    peaks: dict[str, int],
    started_at: str,
    load_before: list[str],
) -> None:
    h, get, get_loud, get_quiet, up, stock, floor_read, floor_up, floor_up_redis, floor_stock, livez = scenarios
    h_rps = h.rps()
    rows: list[tuple[str, ...]] = []

    def row(s: Scenario, target: str, ok: bool | None) -> None:
        ratio = s.rps() / h_rps if h_rps else float("nan")
        rows.append(
            (
                s.name,
                f"{s.rps():,.0f}",
                f"{ratio:.2f}",
                s.latency(),
                s.redis() if s is not h else "-",
                f"{s.upstream():.2f}" if s is not h else "-",
                target,
                "" if ok is None else verdict(ok),
            )
        )

    row(h, "reference", None)
    row(livez, "reference for the upstream path", None)
    row(get, ">= 0.40 x H, 1 Redis cmd", get.rps() >= 0.40 * h_rps and abs(get.redis_total() - 1) < 0.01)
    log_ratio = median(log_pairs)
    row(get_loud, "twin of the next row", None)
    row(get_quiet, f"log on/off >= 0.95 ({log_ratio:.2f}, paired)", log_ratio >= 0.95)
    up_ratio = up.rps() / stock.rps()
    livez_share = up.rps() / livez.rps()
    row(
        up,
        f">= 0.08 x H, >= 0.2 x /livez ({livez_share:.2f})",
        up.rps() >= 0.08 * h_rps and livez_share >= 0.2,
    )
    row(stock, f"chosen/stock >= 5 ({up_ratio:.2f})", up_ratio >= 5)
    row(floor_read, f"fresh GET / this = {get.rps() / floor_read.rps():.2f}", None)
    row(floor_up, f"upstream GET / this = {up.rps() / floor_up.rps():.2f}", None)
    row(
        floor_up_redis,
        f"upstream GET / this = {up.rps() / floor_up_redis.rps():.2f}; this >= 0.08 x H: "
        f"{verdict(floor_up_redis.rps() >= 0.08 * h_rps)}",
        None,
    )
    row(floor_stock, f"floor chosen/stock = {floor_up.rps() / floor_stock.rps():.2f}", None)
    for b in baseline:
        mine = up if "upstream" in b.name else get
        row(b, f"this / baseline = {mine.rps() / b.rps():.2f}", None)

    print()
    print(
        f"## Results ({mode_name}: {mode.rounds} interleaved rounds of wrk -t1 -c{mode.connections} "
        f"-d{mode.seconds:g}s per scenario, medians; started {started_at}, load average before {' '.join(load_before)})"
    )
    print()
    header = ("Scenario", "req/s", "x H", "p50 / p99 ms", "Redis cmds/req", "upstream calls/req", "target", "")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    bad = sum(s.bad() for s in scenarios)
    where = ", ".join(f"{s.name}: {s.bad()}" for s in scenarios if s.bad())
    print()
    print(f"Non-2xx answers and socket errors across all throughput runs: {bad}" + (f" ({where})." if where else "."))
    print()
    print(
        f"The log line: {len(log_pairs)} back-to-back pairs of the twins (A B B A), ratio log on / log off per pair: "
        + ", ".join(f"{r:.2f}" for r in log_pairs)
        + f"; median {log_ratio:.2f} (the ratio of the rows' medians above: {get_loud.rps() / get_quiet.rps():.2f})."
    )
    print()
    added50 = latency["via_p50"] - latency["direct_p50"]
    added99 = latency["via_p99"] - latency["direct_p99"]
    print(
        f"Open loop at {mode.latency_rate:g} req/s for {mode.latency_seconds:g} s, {max(3, mode.rounds)} rounds, medians:"
    )
    print()
    print("| Path | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| emulator directly (kyc-status) | {latency['direct_p50']:.2f} | {latency['direct_p99']:.2f} |")
    print(f"| through the service (GET, KYC re-read) | {latency['via_p50']:.2f} | {latency['via_p99']:.2f} |")
    print(
        f"| added (target <= 2 / <= 8) | {added50:.2f} {verdict(added50 <= 2)} | {added99:.2f} {verdict(added99 <= 8)} |"
    )
    if baseline:
        print(f"| through the baseline | {latency['base_p50']:.2f} | {latency['base_p99']:.2f} |")
        print(
            f"| added by the baseline | {latency['base_p50'] - latency['direct_p50']:.2f} | "
            f"{latency['base_p99'] - latency['direct_p99']:.2f} |"
        )
    print(
        f"| floor: one upstream GET through Litestar and httpx | {latency['floor_p50']:.2f} | {latency['floor_p99']:.2f} |"
    )
    print(
        f"| added by the floor alone | {latency['floor_p50'] - latency['direct_p50']:.2f} | "
        f"{latency['floor_p99'] - latency['direct_p99']:.2f} |"
    )
    print(
        f"| floor: the same in 3 Redis round trips | {latency['floor_redis_p50']:.2f} | "
        f"{latency['floor_redis_p99']:.2f} |"
    )
    print(
        f"| added by that floor | {latency['floor_redis_p50'] - latency['direct_p50']:.2f} | "
        f"{latency['floor_redis_p99'] - latency['direct_p99']:.2f} |"
    )
    print()
    print(
        f"Upstream calls per request through the service: {latency['upstream']:.2f}; failed requests: "
        f"{latency['bad']}; generator fell behind its schedule by at most {latency['late_ms']:.1f} ms."
    )
    print()
    ok_flight = flight["upstream_calls"] == 1 and flight["spread_ms"] <= 5
    print(
        f"100 concurrent identical GETs for one user (upstream answering in 50 ms): "
        f"{flight['upstream_calls']:.0f} upstream call(s) (target 1), leader finished after {flight['leader_ms']:.1f} ms, "
        f"last follower {flight['spread_ms']:.1f} ms after it (target a few ms), non-200: {flight['non_200']:.0f} "
        f"-> {verdict(ok_flight)}. Floor: 100 requests sent at once to H answer {flight['h_spread_ms']:.1f} ms "
        f"apart, first to last (one core writes them one after another)."
    )
    print()
    print(
        f"Memory: peak RSS (VmHWM) of the service under load {peak_kib / 1024:.1f} MiB (target <= 80) -> "
        f"{verdict(peak_kib <= 80 * 1024)}; " + ", ".join(f"{n} {v / 1024:.1f} MiB" for n, v in peaks.items()) + "."
    )
    print(growth_line(growth, mode))
    print_walks(walks)
    print()
    print("Machine: " + "; ".join(f"{k}: {v}" for k, v in machine(nproc).items()))


def print_walks(walks: dict[str, dict[str, RouteClass]]) -> None:
    for name, classes in walks.items():
        print()
        totals = summary(classes)
        ok = (
            totals["commands_per_request"] <= 8
            and totals["max_round_trips_upstream"] <= 3
            and totals["cached_commands"] == 1
        )
        print(
            f"Redis per request by route class ({name}): {totals['requests']:.0f} requests walking "
            f"{len(next(iter(classes.values())).commands)} users from nothing to `done`, one at a time; "
            f"{totals['commands_per_request']:.2f} commands per request over the walk (target <= 8), round trips per "
            f"upstream-calling request {totals['mean_round_trips_upstream']:.2f} on average, at most "
            f"{totals['max_round_trips_upstream']:.0f} (target <= 3), cached GET at most {totals['cached_commands']:.0f} "
            f"command -> {verdict(ok)}"
        )
        print()
        print("\n".join(table(classes)))


if __name__ == "__main__":
    sys.exit(main())
