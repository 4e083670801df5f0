"""Benchmark: controller CPU with idle watchers, polling loop vs notified watches.

Starts a fresh network (``ztos init`` in a temporary directory removed
afterwards) and serves it twice on loopback, one controller process after the
other, each with the real app over mTLS:

1. **polling** (baseline): ``GET /api/v1/watch`` swapped for the loop ZTOS
   used before notified watches (a copy of its few lines lives here and only
   here): every watcher reads the change feed every 50 ms.
2. **notified**: the real route, sleeping on the directory's change signal.

In each, ``--watchers`` long-polls (default 1000; asyncio + httpx, one
keep-alive mTLS connection each, opened before the clock starts) wait on a
directory where nothing changes, with a watch timeout longer than the
measurement, so no request is answered meanwhile. The controller's CPU time
(user + system, ``/proc/PID/stat``) and its change-feed reads (the
``ztos_controller_watch_reads_total`` counter, which both variants keep) are
taken over ``--seconds`` (default 10). Printed: CPU seconds and share of one
core, reads per second, and the ratio polling / notified.

Usage: ``.venv/bin/python bench/watch_cost.py [--watchers 1000] [--seconds 10]
[--json-out FILE] [--time-limit 300]``. Exit status 1 if a watch failed, the
watchers did not all open, or the time limit was hit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from benchlib import BenchError, cpu_seconds, free_port, stop, wait_healthy
from ztos.api.auth import ANYONE, controller_of, requires
from ztos.api.routes.watch import WatchResult, visible, watch_stats
from ztos.api.server import ControllerServer, build_config, listening_socket, write_server_identity
from ztos.client import tls_context
from ztos.controller import Controller
from ztos.directory import open_store
from ztos.enroll.identity_dir import IdentityDir
from ztos.pki import Identity

ZTOS = [sys.executable, "-m", "ztos"]
WATCH_TIMEOUT_S = 60.0  # the route's maximum: no watch returns during a measurement
MODES = ("polling", "notified")


# --------------------------------------------------------------------------- the controller side


POLL_INTERVAL_S = 0.05


async def legacy_watch(
    request: Request,
    who: Annotated[Identity, Depends(requires(ANYONE))],
    since: Annotated[int, Query(ge=0)] = 0,
    timeout: Annotated[float, Query(ge=0, le=60)] = 25.0,
) -> WatchResult:
    """The watch route as it was before notified watches: one feed read per 50 ms per watcher.

    Only the open-watch gauge and the read counter are added, so both variants
    report the same figures.
    """
    controller, stats = controller_of(request), watch_stats(request.app)
    stats.open += 1
    try:
        deadline = time.monotonic() + timeout
        while True:
            stats.reads += 1
            changes = await run_in_threadpool(controller.changes, since)
            shown = [out for change in changes if (out := visible(change)) is not None]
            if changes:
                since = changes[-1].rev
            if shown or time.monotonic() >= deadline:
                return WatchResult(revision=since, changes=shown)
            if not changes:
                await asyncio.sleep(POLL_INTERVAL_S)
    finally:
        stats.open -= 1


def with_legacy_watch(app: FastAPI) -> None:
    """Put ``legacy_watch`` in front of the real watch route (the first match serves)."""
    app.add_api_route("/api/v1/watch", legacy_watch, response_model=WatchResult)
    routes = app.router.routes
    routes.insert(0, routes.pop())


def serve(mode: str, db: Path, port: int) -> None:
    """Child process: the controller as ``ztos controller serve`` runs it, in ``mode``."""
    raise_fd_limit()
    pki_dir = db.parent / "pki"
    controller = Controller.open(open_store(str(db)), pki_dir, [f"https://127.0.0.1:{port}"])
    write_server_identity(controller.ca, pki_dir, ["127.0.0.1", "localhost"])
    config = build_config(controller, pki_dir, "127.0.0.1", port)
    config.backlog = 4096
    if mode == "polling":
        assert isinstance(config.app, FastAPI)
        with_legacy_watch(config.app)
    server = ControllerServer(config, controller.change_signal())
    server.run(sockets=[listening_socket("127.0.0.1", port)])


def raise_fd_limit() -> None:
    """A thousand connections need a thousand descriptors on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 4096:
        print(f"note: open-file limit is {hard}; --watchers near it will fail", file=sys.stderr)
    del soft


@contextmanager
def controller(mode: str, db: Path, home: Path, log: Path) -> Iterator[tuple[str, int]]:
    """One controller process in ``mode``: (url, pid); stopped on leaving."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = {**os.environ, "ZTOS_HOME": str(home)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--db", str(db), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, home, process, log)
        yield url, process.pid
    finally:
        stop(process)


# --------------------------------------------------------------------------- the watchers


@dataclass
class Phase:
    mode: str
    watchers: int
    seconds: float
    cpu_s: float
    reads: float

    def figures(self) -> dict[str, float]:
        return {
            "cpu_s": round(self.cpu_s, 3),
            "cpu_share_of_one_core": round(self.cpu_s / self.seconds, 4),
            "reads_per_s": round(self.reads / self.seconds, 1),
        }


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    if not found:
        raise BenchError(f"{name} not in /metrics")
    return float(found.group(1))


async def open_watchers(url: str, context: ssl.SSLContext, count: int) -> list[httpx.AsyncClient]:
    """One client (one connection) per watcher, connected before any watch starts."""
    clients = [
        httpx.AsyncClient(base_url=url, verify=context, timeout=WATCH_TIMEOUT_S + 30) for _ in range(count)
    ]
    batch = 50  # handshakes a few at a time, so the listen backlog never overflows
    for start in range(0, count, batch):
        await asyncio.gather(*(c.get("/api/v1/healthz") for c in clients[start : start + batch]))
    return clients


async def measure(mode: str, url: str, pid: int, context: ssl.SSLContext, args: argparse.Namespace) -> Phase:
    clients = await open_watchers(url, context, args.watchers)
    probe = httpx.AsyncClient(base_url=url, verify=context, timeout=30)
    try:
        since = (await probe.get("/api/v1/watch", params={"since": 0, "timeout": 0})).json()["revision"]
        params = {"since": since, "timeout": WATCH_TIMEOUT_S}
        watches = [asyncio.ensure_future(c.get("/api/v1/watch", params=params)) for c in clients]
        deadline = time.monotonic() + 60
        while await metric(probe, "ztos_controller_watches") < args.watchers:
            if time.monotonic() > deadline:
                raise BenchError(f"{mode}: not all {args.watchers} watchers opened within 60 s")
            if any(w.done() for w in watches):
                raise BenchError(
                    f"{mode}: a watch returned early: {next(w for w in watches if w.done()).result()}"
                )
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let the start-up burst settle before the clock starts
        cpu0, reads0 = cpu_seconds(pid), await metric(probe, "ztos_controller_watch_reads_total")
        started = time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - started
        cpu1, reads1 = cpu_seconds(pid), await metric(probe, "ztos_controller_watch_reads_total")
        if any(w.done() for w in watches):
            raise BenchError(f"{mode}: a watch returned during the measurement")
        for watch in watches:
            watch.cancel()
        return Phase(mode, args.watchers, elapsed, cpu1 - cpu0, reads1 - reads0)
    finally:
        await probe.aclose()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


def report(phases: dict[str, Phase]) -> dict[str, Any]:
    polling, notified = phases["polling"], phases["notified"]
    if polling.reads == 0:
        raise BenchError("the polling baseline made no reads: the legacy route did not serve")
    ratio = polling.cpu_s / notified.cpu_s if notified.cpu_s > 0 else float("inf")
    print(f"controller CPU with {polling.watchers} idle watchers over {polling.seconds:.1f} s")
    print(f"{'variant':<22} {'CPU s':>8} {'of one core':>12} {'feed reads/s':>13}")
    for phase in (polling, notified):
        fig = phase.figures()
        label = "polling (baseline)" if phase is polling else "notified"
        share, reads = fig["cpu_share_of_one_core"], fig["reads_per_s"]
        print(f"{label:<22} {fig['cpu_s']:>8.2f} {share:>11.1%} {reads:>13.1f}")
    print(f"ratio polling / notified CPU: {ratio:.1f}x")
    return {
        "polling": polling.figures(),
        "notified": notified.figures(),
        "cpu_ratio_polling_over_notified": round(ratio, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="ztos-watch-cost-"))
    try:
        home, db = work / "admin", work / "controller" / "directory.db"
        env = {**os.environ, "ZTOS_HOME": str(home)}
        init = [*ZTOS, "init", "--db", str(db), "--controller-url", "https://127.0.0.1:1"]
        subprocess.run(init, env=env, check=True, capture_output=True, timeout=60)
        context = tls_context(IdentityDir(home).ca_cert, IdentityDir(home))
        phases: dict[str, Phase] = {}
        for mode in MODES:
            with controller(mode, db, home, work / f"controller-{mode}.log") as (url, pid):
                phase = asyncio.wait_for(measure(mode, url, pid, context, args), args.time_limit / len(MODES))
                phases[mode] = asyncio.run(phase)
        return report(phases)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement per variant")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)  # the controller child
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.db, args.port)
        return 0
    try:
        figures = run(args)
    except (BenchError, httpx.HTTPError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(
            f"benchmark failed: a variant took longer than --time-limit {args.time_limit:g} s / 2",
            file=sys.stderr,
        )
        return 1
    if args.json_out:
        machine = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        }
        params = {k: str(v) for k, v in vars(args).items() if k not in ("serve", "db", "port")}
        args.json_out.write_text(
            json.dumps({"params": params, "machine": machine, "figures": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
