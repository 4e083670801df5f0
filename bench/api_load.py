"""Benchmark: API latency under 200 concurrent clients, against a baseline in the same run.

Starts a real controller on loopback (``ztos init`` + ``ztos controller
serve`` on a free port, in a temporary directory removed afterwards), enrols
``--nodes`` hosts through the real enrolment exchange and has each report a
full set of metrics (``PUT /api/v1/nodes/self/metrics``, one peer per other
node), so the read routes have data to render. Then two timed phases, each
``--duration`` seconds with ``--clients`` concurrent clients (asyncio +
httpx, one keep-alive mTLS connection per client, opened before the clock
starts so no TLS handshake is measured; each client sends its next request
as soon as the previous one returns):

1. **baseline**: ``GET /api/v1/healthz`` (no auth, no directory access).
2. **mix**: in turn ``GET /api/v1/nodes``, ``GET /api/v1/security/status`` and
   ``GET /api/v1/monitoring/metrics`` with the admin certificate.

Figures per route: p50/p99/mean (nearest-rank percentiles), throughput, and
the ratio of each percentile to the baseline's. Exit status 1 if any request
failed or the ``--time-limit`` was hit.

Usage: ``.venv/bin/python bench/api_load.py [--clients 200] [--duration 10]
[--nodes 20] [--json-out FILE] [--time-limit 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchlib import BenchError, cpu_seconds, free_port, stop, wait_healthy
from ztos.client import ApiClient, enroll_host, tls_context
from ztos.controller import TokenCreated
from ztos.enroll.identity_dir import IdentityDir

ZTOS = [sys.executable, "-m", "ztos"]
MIX = ("/api/v1/nodes", "/api/v1/security/status", "/api/v1/monitoring/metrics")
BASELINE = "/api/v1/healthz"
REQUEST_TIMEOUT_S = 60.0


@contextmanager
def controller(work: Path) -> Iterator[tuple[str, Path, int]]:
    """A fresh network and its controller on loopback: (url, admin home, pid)."""
    home, db, log = work / "admin", work / "controller" / "directory.db", work / "controller.log"
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "ZTOS_HOME": str(home)}
    subprocess.run(
        [*ZTOS, "init", "--db", str(db), "--controller-url", url], env=env, check=True, capture_output=True
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*ZTOS, "controller", "serve", "--db", str(db), "--listen", url.removeprefix("https://")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, home, process, log)
        yield url, home, process.pid
    finally:
        stop(process)


def populate(url: str, home: Path, work: Path, count: int) -> None:
    """Enrol ``count`` nodes and have each report metrics with a peer per other node."""
    admin = ApiClient.for_identity([url], IdentityDir(home))
    names = [f"n{i:03d}" for i in range(count)]
    for name in names:
        body = admin.request("POST", "/api/v1/tokens", json={"node_name": name, "ttl_seconds": 600})
        enroll_host(TokenCreated.model_validate(body).profile, IdentityDir(work / name))
    for round_ in range(2):  # two reports: rates need two points
        for name in names:
            node = ApiClient.for_identity([url], IdentityDir(work / name))
            peers = [
                {
                    "peer": peer,
                    "rx_bytes": 1000 * round_,
                    "tx_bytes": 2000 * round_,
                    "handshake_age_seconds": 5,
                }
                for peer in names
                if peer != name
            ]
            node.request("PUT", "/api/v1/nodes/self/metrics", json={"interval_seconds": 10, "peers": peers})
            node.close()
        time.sleep(1.1)
    admin.close()


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)

    def summary(self, wall: float) -> dict[str, float]:
        ordered = sorted(self.seconds)
        return {
            "n": len(ordered),
            "p50_ms": round(nearest_rank(ordered, 50) * 1000, 2),
            "p99_ms": round(nearest_rank(ordered, 99) * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
            "req_per_s": round(len(ordered) / wall, 1),
        }


def nearest_rank(ordered: list[float], q: float) -> float:
    if not ordered:
        raise BenchError("no samples")
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Phase:
    routes: tuple[str, ...]
    samples: dict[str, Samples]
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0  # controller CPU seconds spent during the phase

    def server_ms_per_request(self) -> float:
        count = sum(len(s.seconds) for s in self.samples.values())
        return self.server_cpu / count * 1000 if count else 0.0


async def client_loop(client: httpx.AsyncClient, phase: Phase, offset: int, stop_at: float) -> None:
    i = offset
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        route = phase.routes[i % len(phase.routes)]
        i += 1
        start = time.perf_counter()
        try:
            response = await client.get(route)
        except httpx.HTTPError as exc:
            phase.errors.append(f"{route}: {exc!r}")
            continue
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            phase.errors.append(f"{route}: HTTP {response.status_code} {response.text[:200]}")
        phase.samples[route].seconds.append(elapsed)


async def run_phase(
    url: str, context: ssl.SSLContext, routes: tuple[str, ...], clients: int, duration: float, pid: int
) -> Phase:
    phase = Phase(routes, {route: Samples() for route in routes})
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [
        httpx.AsyncClient(base_url=url, verify=context, limits=limits, timeout=REQUEST_TIMEOUT_S)
        for _ in range(clients)
    ]
    try:
        await asyncio.gather(*(c.get(BASELINE) for c in pool))  # open every connection first
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        stop_at = loop.time() + duration
        cpu = cpu_seconds(pid)
        await asyncio.gather(*(client_loop(c, phase, i, stop_at) for i, c in enumerate(pool)))
        phase.server_cpu = cpu_seconds(pid) - cpu
        phase.wall = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return phase


def report(baseline: Phase, mix: Phase, args: argparse.Namespace) -> dict[str, Any]:
    base = baseline.samples[BASELINE].summary(baseline.wall)
    figures: dict[str, Any] = {"baseline " + BASELINE: base}
    print(
        f"API latency, {args.clients} concurrent clients, {args.duration:g} s per phase, {args.nodes} nodes"
    )
    head = f"{'route':34} {'n':>7} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'req/s':>8}"
    print(f"{head} {'p50 x':>7} {'p99 x':>7}")
    print(row("baseline " + BASELINE, base, base))
    for route in routes(args):
        summary = mix.samples[route].summary(mix.wall)
        summary["p50_ratio"] = round(summary["p50_ms"] / base["p50_ms"], 2)
        summary["p99_ratio"] = round(summary["p99_ms"] / base["p99_ms"], 2)
        figures[route] = summary
        print(row(route, summary, base))
    total = sum(len(s.seconds) for s in mix.samples.values())
    print(f"mix throughput {total / mix.wall:.1f} req/s vs baseline {base['req_per_s']} req/s")
    base_cpu, mix_cpu = baseline.server_ms_per_request(), mix.server_ms_per_request()
    print(
        f"controller CPU per request: mix {mix_cpu:.2f} ms vs baseline {base_cpu:.2f} ms "
        f"(x{mix_cpu / base_cpu:.2f}); controller busy {mix.server_cpu / mix.wall:.0%} / "
        f"{baseline.server_cpu / baseline.wall:.0%} of one core"
    )
    figures["controller_cpu_ms_per_request"] = {"mix": round(mix_cpu, 3), "baseline": round(base_cpu, 3)}
    return figures


def routes(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.route) if args.route else MIX


def row(name: str, s: dict[str, float], base: dict[str, float]) -> str:
    ratio50, ratio99 = s["p50_ms"] / base["p50_ms"], s["p99_ms"] / base["p99_ms"]
    return (
        f"{name:34} {s['n']:>7} {s['p50_ms']:>9.2f} {s['p99_ms']:>9.2f} {s['mean_ms']:>9.2f} "
        f"{s['req_per_s']:>8.1f} {ratio50:>7.2f} {ratio99:>7.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--nodes", type=int, default=20, help="nodes enrolled and reporting metrics")
    parser.add_argument("--route", action="append", help="measure these routes instead of the mix (repeat)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ztos-api-load-"))
    try:
        with controller(work) as (url, home, pid):
            populate(url, home, work, args.nodes)
            context = tls_context(IdentityDir(home).ca_cert, IdentityDir(home))
            run = asyncio.wait_for(both_phases(url, context, args, pid), timeout=args.time_limit)
            baseline, mix = asyncio.run(run)
        errors = baseline.errors + mix.errors
        figures = report(baseline, mix, args)
        if args.json_out:
            machine = {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            }
            params = {k: str(v) for k, v in vars(args).items()}
            args.json_out.write_text(
                json.dumps({"params": params, "machine": machine, "figures": figures}, indent=2)
            )
        if errors:
            print(f"{len(errors)} failed requests, first: {errors[0]}", file=sys.stderr)
            return 1
        return 0
    except (BenchError, TimeoutError) as exc:
        print(f"benchmark failed: {exc or 'time limit reached'}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def both_phases(
    url: str, context: ssl.SSLContext, args: argparse.Namespace, pid: int
) -> tuple[Phase, Phase]:
    baseline = await run_phase(url, context, (BASELINE,), args.clients, args.duration, pid)
    mix = await run_phase(url, context, routes(args), args.clients, args.duration, pid)
    return baseline, mix


if __name__ == "__main__":
    sys.exit(main())
