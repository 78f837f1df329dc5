"""`python -m bench.ab --base REF`: the server of this tree against the server of another commit, side by side.

For a change to the server or its options (QUALITY.md: before and after, as ratios). The other commit's `service`
and `bench` packages are unpacked from git into a temporary directory and run with the same interpreter and
libraries, so only the code differs. Two paths, each served by both sides: H (the trivial handler, the server
alone) and the service's GET /livez (the server and the service's outermost layers). Rounds alternate A B, B A;
the figures are the medians of the per-round ratios (this tree / base), the server's CPU time per request (user +
system, from /proc: unlike throughput, barely moved by other load on a shared machine), and the peak RSS (VmHWM)
of each process after all its rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench.load import wrk
from bench.stack import JWT_SECRET, ROOT, Proc, free_port, python_module


def unpack(ref: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", ref, "service", "bench"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def start(name: str, cwd: Path, service: bool) -> Proc:
    port = free_port()
    if service:
        argv = python_module("service", "serve", "--host", "127.0.0.1", "--port", str(port))
        env = {"AUTH_JWT_SECRET": JWT_SECRET, "REDIS_URL": "memory://", "LOG_LEVEL": "info", "LOG_FORMAT": "json"}
        return Proc(name, argv, port, env=env, cwd=cwd)
    return Proc(name, python_module("bench.trivial", "--port", str(port)), port, cwd=cwd)


def cpu_seconds(proc: Proc) -> float:
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _med(rows: list[tuple[float, float, float]], i: int) -> float:
    return statistics.median(r[i] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="main", help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        base_dir = Path(tmp)
        unpack(args.base, base_dir)
        print(f"this tree vs {args.base}: {args.rounds} rounds of wrk -t1 -c{args.connections} -d{args.seconds:g}s")
        print(
            "| path | req/s, base / this | ratio | p99 ms, base / this | CPU us/request, base / this | ratio | peak RSS |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, service, path in (("H: trivial handler", False, "/"), ("service GET /livez", True, "/livez")):
            sides = {"base": start(f"base {label}", base_dir, service), "this": start(f"this {label}", ROOT, service)}
            try:
                results: dict[str, list[tuple[float, float, float]]] = {"base": [], "this": []}
                for side in sides.values():  # warm-up, not counted
                    wrk(side.url + path, tokens=None, offset=0, seconds=1, connections=args.connections)
                for n in range(args.rounds):
                    for name in ("base", "this") if n % 2 == 0 else ("this", "base"):
                        cpu = cpu_seconds(sides[name])
                        r = wrk(
                            sides[name].url + path,
                            tokens=None,
                            offset=0,
                            seconds=args.seconds,
                            connections=args.connections,
                        )
                        if r.bad:
                            raise RuntimeError(f"{name} {label}: {r.bad} failed requests")
                        cpu_us = (cpu_seconds(sides[name]) - cpu) / r.requests * 1e6
                        results[name].append((r.rps, r.p99_ms, cpu_us))
                peak = {name: side.status_kib("VmHWM") for name, side in sides.items()}
            finally:
                for side in sides.values():
                    side.stop()
            ratio = statistics.median(t[0] / b[0] for t, b in zip(results["this"], results["base"], strict=True))
            cpu_ratio = statistics.median(t[2] / b[2] for t, b in zip(results["this"], results["base"], strict=True))
            base, this = results["base"], results["this"]
            print(
                f"| {label} | {_med(base, 0):,.0f} / {_med(this, 0):,.0f} | {ratio:.3f} | "
                f"{_med(base, 1):.2f} / {_med(this, 1):.2f} | {_med(base, 2):.1f} / {_med(this, 2):.1f} | "
                f"{cpu_ratio:.3f} | {peak['base'] / 1024:.1f} / {peak['this'] / 1024:.1f} MiB "
                f"({peak['this'] / peak['base']:.3f}) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
