"""``python -m bench.sim``: parse the options, run the phases, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bench.benchlib import BenchError
from bench.sim import __doc__ as DOC
from bench.sim import network
from bench.sim.agent import Hub, make_keys
from bench.sim.control import Controller, new_controller, raise_fd_limit, usage
from bench.sim.report import print_table, summarise
from bench.sim.run import BASELINE_HOSTS, CHANGE_KINDS, Admin, Sim

from ztos.controller import Controller as Service
from ztos.directory import open_store
from ztos.enroll.identity_dir import IdentityDir
from ztos.model import Role
from ztos.pki import Identity


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=(DOC or "").splitlines()[0])
    add = parser.add_argument
    add("--agents", type=int, default=200, help="simulated hosts N (default 200: a few minutes here)")
    add("--cell-size", type=int, default=10, help="hosts per policy cell (default 10; grows past 600 cells)")
    add("--concurrency", type=int, default=8, help="enrolment lanes (default 8)")
    add("--rounds", type=int, default=2, help="change rounds, at baseline and at N (default 2)")
    add("--kinds", nargs="+", choices=CHANGE_KINDS, default=list(CHANGE_KINDS), help="changes to measure")
    add("--reconcile-interval", type=float, default=60.0, help="agents' watch timeout (default 60)")
    add("--posture-timeout", type=float, default=900.0, help="controller's --posture-timeout (default 900)")
    add("--settle", type=float, default=120.0, help="longest wait for one change to settle (default 120)")
    add("--grace", type=float, default=1.0, help="quiet seconds that end a change (default 1)")
    add("--start-timeout", type=float, default=900.0, help="longest wait for N agents to go quiet")
    add("--idle-seconds", type=float, default=10.0, help="idle controller CPU measurement (default 10)")
    add("--map-samples", type=int, default=50, help="hosts whose map build is timed (default 50)")
    add("--enrol-only", action="store_true", help="stop after the enrolment figures")
    add("--json-out", type=Path, help="write every figure, parameter and sample here")
    add("--time-limit", type=float, default=3600.0, help="give up after this many seconds (default 3600)")
    args = parser.parse_args(argv)
    if args.agents < BASELINE_HOSTS + 2 or args.cell_size < 2 or args.rounds < 1:
        parser.error(f"need --agents >= {BASELINE_HOSTS + 2}, --cell-size >= 2, --rounds >= 1")
    return args


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def build_times(controller: Controller, names: list[str]) -> dict[str, Any]:
    """The controller's own map build, in this process over the run's directory (stopped):
    the first build pays for resolving the policy at this revision, later ones are per host."""
    store = open_store(str(controller.db))
    try:
        service = Service.open(store, controller.db.parent / "pki", [controller.url])
        times = []
        for name in names:
            t0 = time.perf_counter()
            service.node_map(Identity(name=name, role=Role.NODE, serial="0"))
            times.append(time.perf_counter() - t0)
    finally:
        store.close()
    rest = sorted(times[1:]) or times
    return {
        "first_build_ms": round(times[0] * 1000, 2),
        "per_host_ms_p50": round(statistics.median(rest) * 1000, 3),
        "per_host_ms_p99": round(rest[min(len(rest) - 1, int(len(rest) * 0.99))] * 1000, 3),
        "hosts": len(names),
    }


async def simulate(args: argparse.Namespace, controller: Controller, work: Path) -> dict[str, Any]:
    layout = network.Layout.for_hosts(args.agents, args.cell_size)
    figures: dict[str, Any] = {"layout": {"cell_size": layout.cell_size, "cells": layout.cells}}
    hub = Hub(controller.url, IdentityDir(controller.home).ca_cert, args.reconcile_interval)
    admin = Admin.open(controller, args.concurrency)
    sim = Sim(args, controller, admin, hub, work / "agents", layout)
    sim.work.mkdir()
    try:
        print(f"generating keys and CSRs for {args.agents} hosts ...", flush=True)
        t0 = time.perf_counter()
        for i in range(args.agents):
            name = network.host_name(i)
            sim.keys[name] = make_keys(name, layout.cell_of(i))
        figures["key_generation_s"] = round(time.perf_counter() - t0, 1)
        await sim.apply_policy()
        names = [network.host_name(i) for i in range(args.agents)]
        base = names[:BASELINE_HOSTS]

        if not args.enrol_only:
            print(f"baseline: {BASELINE_HOSTS} agents, {args.rounds} rounds of changes ...", flush=True)
            await sim.enrol_many([sim.keys[n] for n in base])
            await sim.start_agents(base)
            figures["baseline_start"] = await sim.quiet(args.start_timeout)
            figures["baseline_changes"] = await sim.changes(args.rounds, base)
            await sim.stop_all()
        else:
            await sim.enrol_many([sim.keys[n] for n in base])

        print(f"enrolling {args.agents - BASELINE_HOSTS} hosts, {args.concurrency} lanes ...", flush=True)
        figures["enrolment"] = await sim.enrol_many([sim.keys[n] for n in names[BASELINE_HOSTS:]])
        if args.enrol_only:
            return figures

        print(f"starting {args.agents} agents ...", flush=True)
        cpu0, t0 = usage(controller.pid).cpu_s, time.perf_counter()
        await sim.start_agents(names)
        start = await sim.quiet(args.start_timeout)
        start["seconds"] = round(time.perf_counter() - t0, 2)
        start["cpu_s"] = round(usage(controller.pid).cpu_s - cpu0, 2)
        figures["start"] = start
        print(f"  quiet after {start['seconds']} s; idle for {args.idle_seconds} s ...", flush=True)
        figures["idle"] = await sim.idle(args.idle_seconds)
        sample = random.Random(3).sample(names, min(args.map_samples, len(names)))
        figures["map_build_sample"] = sample
        try:
            figures["map_fetch"] = await sim.fetch_samples(sample)
            print(f"{args.rounds} rounds of changes with {args.agents} agents ...", flush=True)
            figures["changes"] = await sim.changes(args.rounds, names)
        except (BenchError, httpx.HTTPError) as exc:  # an overloaded controller: keep what was measured
            figures["failed"] = f"{type(exc).__name__}: {exc}"
            print(f"  measurement failed: {figures['failed']}", flush=True)
        figures["controller_end"] = vars(usage(controller.pid))
        return figures
    finally:
        await sim.stop_all()
        await admin.close()
        figures["traffic"] = {
            label: {
                "calls": e.calls,
                "errors": e.errors,
                "refused": e.refused,
                "bytes": e.bytes,
                "p50_ms": round(statistics.median(e.seconds) * 1000, 2) if e.seconds else None,
            }
            for label, e in sorted(hub.traffic.items())
        }


def stop_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C, so the controller and the directory are removed."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="zsim-"))
    controller = new_controller(work)
    try:
        raise_fd_limit(args.agents)
        print(f"starting a controller in {work} ...", flush=True)
        controller.start(args.posture_timeout)
        figures = asyncio.run(asyncio.wait_for(simulate(args, controller, work), args.time_limit))
        controller.stop()
        if "map_build_sample" in figures:
            figures["map_build"] = build_times(controller, figures.pop("map_build_sample"))
        results = summarise(args, figures, machine(), datetime.now(UTC).isoformat(timespec="seconds"))
        print_table(results)
        if args.json_out is not None:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(results, indent=2) + "\n")
            print(f"results written to {args.json_out}")
        return 0
    except (BenchError, OSError) as exc:
        print(f"simulation failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"simulation failed: past --time-limit {args.time_limit:g} s", file=sys.stderr)
        return 1
    finally:
        controller.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
