"""Benchmark: tenants over the mesh in real lab namespaces (throughput, new-workload reachability).

Two 3-host labs, one per mode: **embedded** (agents program VXLAN flood lists,
learning bridges, IPv6 VTEPs) and **EVPN** (``network configure --bgp --as
65000`` before anything else: FRR on every host, IPv4 VTEPs, MACs from type-2
routes). In each, tenant ``bench`` (10.30.0.0/24) is attached to h1, h2 and h3
with one workload per host (w1@h1, w2@h2, w3@h3). Every figure is printed
next to a baseline measured in the same lab, in the same run:

1. **Throughput**: iperf3 TCP (one stream) w2 -> w1, i.e. workload to workload
   across hosts inside the tenant, against h2 -> h1 over the bare mesh (the two
   hosts' overlay IPv4 addresses, same WireGuard tunnel), runs alternated,
   median of 3 (``--iperf-rounds``; the per-round paired ratios are shown
   too, being less exposed to load drifting on a shared machine). The tenant
   MTU the workloads got (``eth0`` in the workload namespace) and the
   WireGuard MTU are read back with ``ip link show``.
2. **New workload reachable**: ``POST /api/v1/workloads`` (what ``ztos
   workload add`` sends) for a new workload on h1, from the API call returning
   until an ICMPv4 echo from w2 (h2) and from w3 (h3) to its address is
   answered (probes every 10 ms from inside their namespaces; real ARP through
   the tenant, with the probers' ARP retry timer at 10 ms). Also timed: until
   its namespace exists on h1, until h1's agent logs the pass that built it,
   and until its MAC is in h2's and h3's VXLAN FDB (learned, or from EVPN).
   New names each round (5, ``--add-rounds``); the workloads stay, so h1
   holds one more each round (first and last rounds are compared).
   **Baselines**: the agents' reconcile interval (the wait a new workload
   would see if the agent only polled: a ratio below 1 means the change feed
   woke it) and, measured just before each add, the *warm path*: w2/w3 -> w1
   with their neighbour tables flushed, i.e. ARP plus echo across a tenant
   segment that already exists, the floor the same probe can observe.

Probes run from this process with sockets opened inside the lab namespaces
(``tenants_net``/``mesh_net``); API calls from one thread living in the
underlay namespace over a warmed-up mTLS connection. Every wait is bounded;
every lab is torn down (``runner.down``) even on failure or SIGTERM, and the
run fails if a namespace, wireguard-go, FRR daemon or socket of it is left.

Usage: ``.venv/bin/python bench/tenants.py [--quick] [--json-out FILE]`` (root).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import secrets
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from mesh import (
    AdminApi,
    BenchError,
    Deadline,
    Row,
    lab,
    leftovers,
    ms,
    node_of,
    print_table,
    summary,
    wait_mesh,
)
from mesh_net import NETNS_DIR, link_mtu, netns_run, wait_until
from tenants_net import (
    FdbReader,
    ProbeError,
    fast_arp,
    first_replies_from,
    flush_neighbours,
    frr_leftovers,
    iperf,
    wait_for_mac,
    wait_for_netns,
)
from ztos.errors import ZtosError
from ztos.lab import runner
from ztos.lab.topology import LabHost, LabTopology, netns_prefix
from ztos.routing import frr
from ztos.routing.spec import CONFIG_ROOT

TENANT = "bench"
SUBNET = "10.30.0.0/24"
ASN = 65000
SETUP_TIMEOUT = 60.0
ADD_TIMEOUT = 20.0
PROBE_INTERVAL = 0.01
QUIET_S = 0.5  # between rounds: let every agent finish the previous change

TARGET_THROUGHPUT_RATIO = 0.9

# the three workloads every lab starts with: name -> host
BASE_WORKLOADS = {"w1": "h1", "w2": "h2", "w3": "h3"}
PROBERS = ("w2", "w3")  # the other hosts' workloads that probe each new workload on h1
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO applied: \+ workload (\S+) ")


# --- the tenant in a lab ----------------------------------------------------------------------


@dataclass
class Tenant:
    """A lab with tenant ``bench`` on every host and w1/w2/w3 up."""

    topology: LabTopology
    api: AdminApi
    mode: str
    vni: int
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def vxlan(self) -> str:
        return f"zt-v{self.vni}"

    def host(self, workload: str) -> LabHost:
        return self.topology.host_named(self.workloads[workload]["node"])

    def netns(self, workload: str) -> str:
        return f"{self.host(workload).netns}-w-{workload}"

    def ipv4(self, workload: str) -> str:
        return str(self.workloads[workload]["ipv4"]).split("/")[0]

    def add(self, name: str, node: str) -> dict[str, Any]:
        body = self.api.call("POST", "/api/v1/workloads", json={"name": name, "tenant": TENANT, "node": node})
        assert isinstance(body, dict)
        self.workloads[name] = body
        return body


def has_ipv4(netns: str) -> bool:
    """The workload's ``eth0`` is there with its IPv4 address (the agent has finished it)."""
    if not (NETNS_DIR / netns).exists():
        return False
    try:
        return "inet " in netns_run(netns, "ip", "-o", "-4", "addr", "show", "dev", "eth0", timeout=5)
    except RuntimeError:
        return False


def set_up_tenant(topology: LabTopology, api: AdminApi, evpn: bool) -> Tenant:
    if evpn:
        api.call("POST", "/api/v1/network/configure", json={"bgp": True, "asn": ASN})
    created = api.call("POST", "/api/v1/tenants", json={"name": TENANT, "ipv4": SUBNET})
    for host in topology.hosts:
        api.call("POST", f"/api/v1/tenants/{TENANT}/attach", json={"node": host.name})
    tenant = Tenant(topology, api, "EVPN" if evpn else "embedded", int(created["vni"]))
    for name, node in BASE_WORKLOADS.items():
        tenant.add(name, node)
    for name in BASE_WORKLOADS:
        netns = tenant.netns(name)
        if wait_until(functools.partial(has_ipv4, netns), SETUP_TIMEOUT, 0.05) is None:
            raise BenchError(
                f"{tenant.mode}: workload {name} has no eth0 with IPv4 within {SETUP_TIMEOUT:g}s"
            )
    for name in PROBERS:
        fast_arp(tenant.netns(name))
    for target in BASE_WORKLOADS:
        sources = {s: tenant.netns(s) for s in BASE_WORKLOADS if s != target}
        first = first_replies_from(sources, tenant.ipv4(target), SETUP_TIMEOUT, 0.05)
        silent = [s for s, at in first.items() if at is None]
        if silent:
            raise BenchError(
                f"{tenant.mode}: {silent} get no echo reply from {target} within {SETUP_TIMEOUT:g}s"
            )
    return tenant


# --- 1. throughput --------------------------------------------------------------------------------


@dataclass
class Throughput:
    mode: str
    wg_mtu: dict[str, int]
    tenant_mtu: dict[str, int]
    tenant_bps: list[float] = field(default_factory=list)
    mesh_bps: list[float] = field(default_factory=list)

    @property
    def tenant(self) -> float:
        return statistics.median(self.tenant_bps)

    @property
    def mesh(self) -> float:
        return statistics.median(self.mesh_bps)

    @property
    def ratio(self) -> float:
        return self.tenant / self.mesh

    @property
    def paired(self) -> list[float]:
        """Tenant over mesh for each round's two back-to-back runs (less exposed to drift)."""
        return [t / m for t, m in zip(self.tenant_bps, self.mesh_bps, strict=True)]


def bench_throughput(tenant: Tenant, rounds: int, seconds: float, deadline: Deadline) -> Throughput:
    h1, h2 = tenant.topology.hosts[0], tenant.topology.hosts[1]
    result = Throughput(
        tenant.mode,
        {h.name: link_mtu(h.netns, h.wg_interface) for h in tenant.topology.hosts},
        {w: link_mtu(tenant.netns(w), "eth0") for w in BASE_WORKLOADS},
    )
    print(
        f"  {tenant.mode}: WireGuard MTU {result.wg_mtu}, tenant MTU (workload eth0) {result.tenant_mtu}",
        flush=True,
    )
    h1_overlay = str(node_of(h1)["overlay_ipv4"]).split("/")[0]
    for index in range(rounds):
        deadline.check(f"{tenant.mode} iperf3 round {index + 1}")
        order = ("mesh", "tenant") if index % 2 == 0 else ("tenant", "mesh")
        for which in order:
            if which == "mesh":
                bps = iperf(h1.netns, h2.netns, h1_overlay, seconds)
                result.mesh_bps.append(bps)
            else:
                bps = iperf(tenant.netns("w1"), tenant.netns("w2"), tenant.ipv4("w1"), seconds)
                result.tenant_bps.append(bps)
            label = "h2->h1 overlay" if which == "mesh" else "w2->w1 tenant "
            print(f"  {tenant.mode} round {index + 1} {label}: {bps / 1e9:.3f} Gbit/s", flush=True)
    return result


# --- 2. a new workload becoming reachable ---------------------------------------------------------------


@dataclass
class AddRound:
    mode: str
    workload: str
    ipv4: str
    mac: str
    # seconds: the POST itself; then from it returning until h1 has the namespace, until
    # h1's agent logged the pass that built it, until each prober got an echo reply and
    # until the MAC is in each other host's VXLAN FDB; and the warm path (probe start -> reply)
    api_s: float
    h1_workloads_before: int = 0
    netns_s: float | None = None
    agent_logged_s: float | None = None
    reply_s: dict[str, float | None] = field(default_factory=dict)
    fdb_s: dict[str, float | None] = field(default_factory=dict)
    warm_s: dict[str, float | None] = field(default_factory=dict)

    @property
    def reachable_s(self) -> float | None:
        """From the API call returning until every other host's workload got an echo reply."""
        values = list(self.reply_s.values())
        return None if not values or None in values else max(v for v in values if v is not None)

    @property
    def fdb_all_s(self) -> float | None:
        values = list(self.fdb_s.values())
        return None if not values or None in values else max(v for v in values if v is not None)

    @property
    def warm_max_s(self) -> float | None:
        values = list(self.warm_s.values())
        return None if not values or None in values else max(v for v in values if v is not None)


def warm_path(tenant: Tenant) -> dict[str, float | None]:
    """w2 and w3 -> w1 (exists, segment up) with the probers' neighbour tables flushed."""
    for name in PROBERS:
        flush_neighbours(tenant.netns(name))
    sources = {tenant.host(p).name: tenant.netns(p) for p in PROBERS}
    start = time.monotonic()
    first = first_replies_from(sources, tenant.ipv4("w1"), 5.0, PROBE_INTERVAL)
    return {k: None if at is None else at - start for k, at in first.items()}


def agent_logged(host: LabHost, workload: str) -> float | None:
    """When ``host``'s agent logged ``+ workload NAME`` (its pass done), on the monotonic clock."""
    try:
        lines = host.agent_log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        match = LOG_LINE.match(line)
        if match and match.group(2) == workload:
            wall = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            return wall - time.time() + time.monotonic()
    return None


def add_round(tenant: Tenant, name: str, readers: dict[str, FdbReader]) -> AddRound:
    h1 = tenant.topology.hosts[0]
    warm = warm_path(tenant)
    for prober in PROBERS:
        flush_neighbours(tenant.netns(prober))
    time.sleep(QUIET_S)
    netns = f"{h1.netns}-w-{name}"
    seen_netns: list[float | None] = []
    stop_netns = threading.Event()

    def watch_netns() -> None:
        deadline = time.monotonic() + ADD_TIMEOUT
        while not stop_netns.is_set() and time.monotonic() < deadline:
            at = wait_for_netns(netns, 0.05)
            if at is not None:
                seen_netns.append(at)
                return
        seen_netns.append(None)

    watcher = threading.Thread(target=watch_netns, name="netns-watch", daemon=True)
    watcher.start()
    t0 = time.monotonic()
    try:
        body = tenant.add(name, h1.name)
    finally:
        t_ack = time.monotonic()
    result = AddRound(
        tenant.mode, name, str(body["ipv4"]).split("/")[0], str(body["mac"]), t_ack - t0, warm_s=warm
    )
    result.h1_workloads_before = sum(w["node"] == h1.name for w in tenant.workloads.values()) - 1
    sources = {tenant.host(p).name: tenant.netns(p) for p in PROBERS}
    with ThreadPoolExecutor(len(readers)) as pool:
        fdb = {
            host: pool.submit(wait_for_mac, reader, tenant.vxlan, result.mac, ADD_TIMEOUT)
            for host, reader in readers.items()
        }
        replies = first_replies_from(sources, result.ipv4, ADD_TIMEOUT, PROBE_INTERVAL)
        result.fdb_s = {
            host: None if (at := f.result(timeout=ADD_TIMEOUT + 5)) is None else at - t_ack
            for host, f in fdb.items()
        }
    result.reply_s = {k: None if at is None else at - t_ack for k, at in replies.items()}
    watcher.join(ADD_TIMEOUT + 1)
    stop_netns.set()
    if seen_netns and seen_netns[0] is not None:
        result.netns_s = seen_netns[0] - t_ack
    # the agent logs what it applied at the end of its pass, possibly after the first echo
    logged: float | None = None
    if wait_until(lambda: agent_logged(h1, name) is not None, 5.0, 0.05) is not None:
        logged = agent_logged(h1, name)
    if logged is not None:
        result.agent_logged_s = logged - t_ack
    return result


def bench_adds(tenant: Tenant, rounds: int, deadline: Deadline) -> list[AddRound]:
    readers = {h.name: FdbReader(h.netns) for h in tenant.topology.hosts[1:]}
    results: list[AddRound] = []
    try:
        for index in range(rounds):
            deadline.check(f"{tenant.mode} add round {index + 1}")
            r = add_round(tenant, f"n{index + 1}", readers)
            results.append(r)
            print(
                f"  {tenant.mode} add {r.workload} ({r.ipv4}, h1 had {r.h1_workloads_before}): "
                f"API {ms(r.api_s)}; then netns "
                f"{ms(r.netns_s)}, agent pass logged {ms(r.agent_logged_s)}, ping from "
                + ", ".join(f"{k} {ms(v)}" for k, v in r.reply_s.items())
                + ", MAC in FDB "
                + ", ".join(f"{k} {ms(v)}" for k, v in r.fdb_s.items())
                + f"; warm path {ms(r.warm_max_s)}",
                flush=True,
            )
            if r.reachable_s is None:
                raise BenchError(f"{tenant.mode}: workload {r.workload} not reachable from every host: {r}")
    finally:
        for reader in readers.values():
            reader.close()
    return results


# --- one lab per mode -------------------------------------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    vni: int
    throughput: Throughput
    adds: list[AddRound]


def bench_mode(name: str, evpn: bool, params: dict[str, Any], deadline: Deadline) -> ModeResult:
    deadline.check(f"lab {name}")
    with lab(name, 3, 1500, float(params["reconcile_interval"])) as topology:
        wait_mesh(list(topology.hosts))
        api = AdminApi(topology)
        try:
            started = time.monotonic()
            tenant = set_up_tenant(topology, api, evpn)
            print(
                f"  lab {name} ({tenant.mode}): tenant {TENANT} VNI {tenant.vni} on h1-h3, "
                f"w1-w3 reachable {time.monotonic() - started:.1f} s after the first API call",
                flush=True,
            )
            throughput = bench_throughput(
                tenant, int(params["iperf_rounds"]), float(params["iperf_seconds"]), deadline
            )
            adds = bench_adds(tenant, int(params["add_rounds"]), deadline)
        finally:
            api.close()
    return ModeResult(tenant.mode, tenant.vni, throughput, adds)


# --- report -------------------------------------------------------------------------------------------


def known(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def build_rows(results: list[ModeResult], interval: float) -> list[Row]:
    rows: list[Row] = []
    gbit = 1e9
    for r in results:
        t = r.throughput
        rows.append(
            Row(
                f"{r.mode}: TCP w2->w1 in the tenant, median of {len(t.tenant_bps)}",
                f"{t.tenant / gbit:.3f} Gbit/s",
                f"h2->h1 overlay {t.mesh / gbit:.3f} Gbit/s",
                f"{t.ratio:.2f}x",
                f">= {TARGET_THROUGHPUT_RATIO}x",
                t.ratio >= TARGET_THROUGHPUT_RATIO,
            )
        )
        rows.append(
            Row(
                "  MTU: WireGuard / tenant (workload eth0)",
                f"{t.wg_mtu['h1']} / {t.tenant_mtu['w1']}",
                "",
                f"{t.tenant_mtu['w1'] / t.wg_mtu['h1']:.3f}x",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "  paired rounds (tenant / mesh back to back): median, range",
                f"{statistics.median(t.paired):.2f}x",
                "",
                f"{min(t.paired):.2f}-{max(t.paired):.2f}x",
                "",
                None,
            )
        )
    for r in results:
        reach = known([a.reachable_s for a in r.adds])
        warm = known([a.warm_max_s for a in r.adds])
        if not reach:
            continue
        med = statistics.median(reach)
        rows.append(
            Row(
                f"{r.mode}: new workload on h1 -> echo from h2 and h3, median (n={len(reach)})",
                ms(med),
                f"reconcile interval {ms(interval)}",
                f"{med / interval:.2f}x",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "  ... max",
                ms(max(reach)),
                f"reconcile interval {ms(interval)}",
                f"{max(reach) / interval:.2f}x",
                "",
                None,
            )
        )
        first, last = r.adds[0], r.adds[-1]
        if len(r.adds) > 1 and first.reachable_s is not None and last.reachable_s is not None:
            rows.append(
                Row(
                    f"  ... first / last round (h1 had {first.h1_workloads_before} / "
                    f"{last.h1_workloads_before} workloads)",
                    f"{ms(first.reachable_s)} / {ms(last.reachable_s)}",
                    "",
                    f"{last.reachable_s / first.reachable_s:.2f}x",
                    "",
                    None,
                )
            )
        if warm:
            warm_med = statistics.median(warm)
            rows.append(
                Row(
                    "  ... vs warm path (existing pair, ARP + echo)",
                    ms(med),
                    f"warm path {warm_med * 1000:.1f} ms",
                    f"{med / warm_med:.0f}x",
                    "",
                    None,
                )
            )
        for label, values in (
            ("  of which API return -> namespace on h1, median", known([a.netns_s for a in r.adds])),
            (
                "  of which API return -> h1 agent logged its pass, median",
                known([a.agent_logged_s for a in r.adds]),
            ),
            ("  new MAC in h2 and h3 VXLAN FDB, median", known([a.fdb_all_s for a in r.adds])),
            ("  the POST /api/v1/workloads itself, median", [a.api_s for a in r.adds]),
        ):
            if values:
                rows.append(Row(label, ms(statistics.median(values)), "", "", "", None))
    if len(results) == 2:
        base, other = results
        a, b = known([x.reachable_s for x in base.adds]), known([x.reachable_s for x in other.adds])
        if a and b:
            rows.append(
                Row(
                    f"{other.mode} vs {base.mode}: new workload reachable, median",
                    ms(statistics.median(b)),
                    f"{base.mode} {ms(statistics.median(a))}",
                    f"{statistics.median(b) / statistics.median(a):.2f}x",
                    "",
                    None,
                )
            )
        rows.append(
            Row(
                f"{other.mode} vs {base.mode}: tenant TCP throughput",
                f"{other.throughput.tenant / gbit:.3f} Gbit/s",
                f"{base.mode} {base.throughput.tenant / gbit:.3f} Gbit/s",
                f"{other.throughput.tenant / base.throughput.tenant:.2f}x",
                "",
                None,
            )
        )
    return rows


def json_report(
    results: list[ModeResult], rows: list[Row], params: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    return {
        "benchmark": "bench/tenants.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "parameters": params,
        "elapsed_s": elapsed,
        "modes": {
            r.mode: {
                "vni": r.vni,
                "throughput": {
                    **asdict(r.throughput),
                    "tenant_median_bps": r.throughput.tenant,
                    "mesh_median_bps": r.throughput.mesh,
                    "tenant_over_mesh": r.throughput.ratio,
                    "paired_ratios": r.throughput.paired,
                },
                "new_workload": {
                    "reachable": summary(known([a.reachable_s for a in r.adds])),
                    "netns": summary(known([a.netns_s for a in r.adds])),
                    "agent_logged": summary(known([a.agent_logged_s for a in r.adds])),
                    "fdb_all": summary(known([a.fdb_all_s for a in r.adds])),
                    "warm_path": summary(known([a.warm_max_s for a in r.adds])),
                    "api": summary([a.api_s for a in r.adds]),
                    "rounds": [
                        {
                            **asdict(a),
                            "reachable_s": a.reachable_s,
                            "fdb_all_s": a.fdb_all_s,
                            "warm_max_s": a.warm_max_s,
                        }
                        for a in r.adds
                    ],
                },
            }
            for r in results
        },
        "table": [asdict(row) for row in rows],
    }


def all_leftovers(names: list[str]) -> list[str]:
    """mesh.py's check (namespaces, wireguard-go, UAPI sockets) plus FRR daemons and directories."""
    found = leftovers(names)
    for name in names:
        prefix = netns_prefix(name)
        found += frr_leftovers(prefix)
        found += [f"dir {p}" for root in (frr.RUN_ROOT, CONFIG_ROOT) for p in root.glob(f"{prefix}*")]
    return found


# --- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (smoke run)")
    parser.add_argument("--json-out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--iperf-rounds", type=int, help="iperf3 runs per path and mode (default 3, quick 1)")
    parser.add_argument("--add-rounds", type=int, help="new workloads per mode (default 5, quick 2)")
    parser.add_argument("--reconcile-interval", type=float, default=runner.DEFAULT_RECONCILE_INTERVAL)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; fail cleanly past it")
    return parser.parse_args(argv)


MAIN_PID = os.getpid()


def _terminate(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds the main process through its ``finally`` blocks (labs torn down).

    pyroute2's forked helpers inherit this handler and a copy of our stack:
    they leave at once instead of unwinding (see ``bench/mesh.py``).
    """
    if os.getpid() != MAIN_PID:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/tenants.py needs root (network namespaces, wireguard-go, FRR)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    quick = bool(args.quick)
    params: dict[str, Any] = {
        "quick": quick,
        "iperf_rounds": args.iperf_rounds or (1 if quick else 3),
        "iperf_seconds": 2.0 if quick else 5.0,
        "add_rounds": args.add_rounds or (2 if quick else 5),
        "reconcile_interval": args.reconcile_interval,
        "probe_interval_s": PROBE_INTERVAL,
        "prober_arp_retrans_ms": 10,
    }
    base = "bt" + secrets.token_hex(2)[:3]
    names = [f"{base}e", f"{base}b"]
    started = time.monotonic()
    deadline = Deadline(started + args.time_limit)
    results: list[ModeResult] = []
    failed = False
    try:
        print("embedded mode (flood lists, learning), 3 hosts", flush=True)
        results.append(bench_mode(names[0], False, params, deadline))
        print(f"EVPN mode (BGP AS {ASN}, FRR), 3 hosts", flush=True)
        results.append(bench_mode(names[1], True, params, deadline))
    except (BenchError, ProbeError, RuntimeError, TimeoutError, ZtosError) as exc:
        print(f"bench/tenants.py failed: {exc}", file=sys.stderr)
        failed = True
    finally:
        left = all_leftovers(names)
        if left:
            print("LEFT BEHIND: " + "; ".join(left), file=sys.stderr)
    if results:
        rows = build_rows(results, float(params["reconcile_interval"]))
        print_table(rows)
        elapsed = time.monotonic() - started
        print(
            f"\nrun took {elapsed:.0f} s; labs {', '.join(names)} torn down"
            + ("" if left else ", nothing left behind")
        )
        if args.json_out:
            args.json_out.write_text(json.dumps(json_report(results, rows, params, elapsed), indent=2) + "\n")
            print(f"JSON written to {args.json_out}")
    return 1 if failed or left or len(results) < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
