"""Redis cost by route class over whole onboarding walks: each request alone, its commands and round trips counted.

Users walk from nothing to `done` the way a frontend drives them, one request at a time for the whole stack, so the
deltas of the throwaway Redis server's counters around a request are that request's: `INFO commandstats` gives the
commands (those run inside a Lua script one by one, the EVALSHA itself too) and `total_reads_processed` in
`INFO stats` the round trips (one read event per request or pipeline the server receives; the bench's own INFO is
one of them and is taken off). The steps go phase by phase across all users, with a pause past the KYC re-read
interval where a frontend would be polling, so the GETs that re-read the upstream do so. One user walks first,
uncounted: the service's first requests open its connections and load its scripts, once per process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import redis

from bench.users import PHONE, Driver

POLL_PAUSE_SECONDS = 5.2  # past the service's KYC re-read interval (5 s)


@dataclass
class RouteClass:
    name: str
    commands: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)
    by_command: dict[str, int] = field(default_factory=dict)


class Meter:
    """Redis counters and upstream calls around one request at a time."""

    def __init__(self, redis_port: int, emulator_url: str) -> None:
        self._redis = redis.Redis(port=redis_port)
        self._emulator = httpx.Client(base_url=emulator_url, timeout=60)

    def read(self) -> tuple[dict[str, int], int, int]:
        info = self._redis.execute_command("INFO", "stats", "commandstats")
        commands = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}
        commands.pop("info", None)
        calls = len(self._emulator.get("/_emulator/calls").json()["calls"])
        return commands, int(info["total_reads_processed"]), calls

    def close(self) -> None:
        self._redis.close()
        self._emulator.close()


async def walk(
    service_url: str, emulator_url: str, redis_port: int, secret: str, users: int, *, prefix: str
) -> dict[str, RouteClass]:
    """`users` users from nothing to `done`; the Redis cost of each request, by route class."""
    meter = Meter(redis_port, emulator_url)
    classes: dict[str, RouteClass] = {}
    subs = [f"{prefix}-{i}" for i in range(users)]
    await _walk(service_url, emulator_url, meter, secret, [f"{prefix}-warm-up"], {})
    await _walk(service_url, emulator_url, meter, secret, subs, classes)
    meter.close()
    return classes


async def _walk(
    service_url: str, emulator_url: str, meter: Meter, secret: str, subs: list[str], classes: dict[str, RouteClass]
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        driver = Driver(session, service_url, emulator_url, secret)

        async def step(name: str, sub: str, method: str, path: str = "", body: Any = None) -> dict[str, Any]:
            before, reads_before, calls_before = await asyncio.to_thread(meter.read)
            answer = await driver.call(sub, method, path, body)
            after, reads_after, calls_after = await asyncio.to_thread(meter.read)
            c = classes.setdefault(name, RouteClass(name))
            delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            c.commands.append(sum(delta.values()))
            c.round_trips.append(reads_after - reads_before - 1)  # the second INFO is one read itself
            c.upstream.append(calls_after - calls_before)
            for k, v in delta.items():
                c.by_command[k] = c.by_command.get(k, 0) + v
            return answer

        for sub in subs:
            await step("GET, a new user", sub, "GET")
        for sub in subs:
            await step("POST start (sends the email code)", sub, "POST", "", {"email": f"{sub}@walk.example.com"})
        codes = await driver.codes("email")
        for sub in subs:
            await step(
                "POST email-verification",
                sub,
                "POST",
                "/email-verification",
                {"code": codes[f"{sub}@walk.example.com"]},
            )
        for sub in subs:
            await step("POST kyc-session", sub, "POST", "/kyc-session")
        for sub in subs:
            await step("GET, polling right after the KYC link", sub, "GET")
        await asyncio.sleep(POLL_PAUSE_SECONDS)
        for sub in subs:
            await step("GET, KYC re-read (pending)", sub, "GET")
        async with httpx.AsyncClient(base_url=emulator_url, timeout=60) as control:
            for sub in subs:
                approved = await control.post(
                    f"/_emulator/customers/{sub}@walk.example.com/kyc", json={"status": "approved"}
                )
                approved.raise_for_status()
        await asyncio.sleep(POLL_PAUSE_SECONDS)
        questions: dict[str, Any] = {}
        for sub in subs:
            state = await step("GET, KYC re-read (approved)", sub, "GET")
            questions[sub] = state["nextAction"]["questions"]
        for sub in subs:
            answers = [{"question": q["id"], "answer": q["options"][0]} for q in questions[sub]]
            await step("POST source-of-funds", sub, "POST", "/source-of-funds", {"answers": answers})
        for sub in subs:  # one number for all users: each one's code is read before the next asks for one
            await step("POST phone (sends the SMS code)", sub, "POST", "/phone", {"phoneNumber": PHONE})
            sms = (await driver.codes("sms"))[PHONE]
            await step("POST phone-verification", sub, "POST", "/phone-verification", {"code": sms})
        for sub in subs:
            state = await step("POST card", sub, "POST", "/card")
            if state["nextAction"]["type"] != "done":
                raise RuntimeError(f"expected done, got {state['nextAction']}")
        for sub in subs:
            await step("GET, cached (done)", sub, "GET")


def mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("nan")


def table(classes: dict[str, RouteClass]) -> list[str]:
    lines = [
        "| Route class | requests | Redis commands/req (by name) | round trips/req (max) | upstream calls/req |",
        "|---|---|---|---|---|",
    ]
    for c in classes.values():
        n = len(c.commands)
        names = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(c.by_command.items()))
        lines.append(
            f"| {c.name} | {n} | {mean(c.commands):.2f} ({names}) | {mean(c.round_trips):.2f} ({max(c.round_trips)}) "
            f"| {mean(c.upstream):.2f} |"
        )
    return lines


def summary(classes: dict[str, RouteClass]) -> dict[str, float]:
    commands = [v for c in classes.values() for v in c.commands]
    upstream_trips = [t for c in classes.values() for t, u in zip(c.round_trips, c.upstream, strict=True) if u]
    return {
        "requests": len(commands),
        "commands_per_request": mean(commands),
        "max_round_trips_upstream": max(upstream_trips) if upstream_trips else 0,
        "mean_round_trips_upstream": mean(upstream_trips),
        "cached_commands": max(
            (max(c.commands) for name, c in classes.items() if name.startswith("GET, cached")), default=0
        ),
    }
