"""Benchmark: the embedded DNS server against BIND 9, same zone, same machine, same run.

Three servers: the embedded one with its answer cache (default size), the
embedded one without it (every query parsed and rendered by dnspython), and
BIND 9. Two figures per server, each embedded figure also shown as a ratio to
BIND's:

1. **Queries per second** over UDP on 127.0.0.1 for a mix of AAAA, A, SRV and
   NXDOMAIN questions against a zone of ``--hosts`` hosts. The load comes from
   ``dnsperf`` when it is installed (``apt-get install dnsperf``), else from a
   built-in dnspython load generator (``--workers`` processes, each keeping
   ``--window`` queries outstanding on one UDP socket). The embedded server
   runs in its own process, so the load generator does not share its GIL.
2. **Update-to-resolve latency**: a host's ``DnsUpdater.replace_host`` (RFC
   2136 over TCP, TSIG-signed) is timed until the acknowledgement ("ack"), and
   until a UDP query first returns the new address ("visible"); ``--rounds``
   samples, percentiles nearest-rank.

Both servers get the same keys, policy and zone (``ztos.discovery``), on free
ports, in a temporary directory that is removed afterwards; every process is
stopped at the end, also on errors.

Usage: ``.venv/bin/python bench/dns_bench.py [--hosts 200] [--duration 10]
[--rounds 200] [--clients 4] [--workers 2] [--window 64] [--json-out FILE]
[--load dnsperf|python]``
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import multiprocessing
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import dns.message
import dns.query

from ztos.discovery import (
    DnsServer,
    DnsUpdater,
    EngineSettings,
    TransferAcl,
    Zone,
    network_policy,
    new_tsig_key,
    new_zone,
)
from ztos.discovery import names as n
from ztos.discovery.bind import BindServer, free_port

ZONE = n.zone_origin("bench")
HOST = "127.0.0.1"


@dataclass
class Figures:
    server: str
    qps: float
    query_latency_ms: float | None
    lost: int
    update_ack_p50_ms: float
    update_ack_p99_ms: float
    visible_p50_ms: float
    visible_p99_ms: float


def bench_zone(hosts: int) -> Zone:
    lines = new_zone(ZONE, [ipaddress.ip_address(HOST)]).to_texts()
    for i in range(hosts):
        name = n.host_name(f"h{i}", ZONE)
        lines += [f"{name} 60 IN AAAA fd00:5a::{i + 1:x}", f"{name} 60 IN A 10.90.{i // 250}.{i % 250 + 1}"]
        lines.append(f"{n.service_name('wireguard', 'udp', f'h{i}', ZONE)} 60 IN SRV 0 0 51820 {name}")
    return Zone.from_texts(ZONE, lines)


def questions(hosts: int, count: int = 2000, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        i = rng.randrange(hosts)
        kind = rng.choice(["AAAA", "AAAA", "A", "SRV", "NX"])
        if kind == "SRV":
            out.append((n.service_name("wireguard", "udp", f"h{i}", ZONE).to_text(), "SRV"))
        elif kind == "NX":
            out.append((n.host_name(f"missing{i}", ZONE).to_text(), "AAAA"))
        else:
            out.append((n.host_name(f"h{i}", ZONE).to_text(), kind))
    return out


# --- servers ---------------------------------------------------------------------------------------


def _serve_embedded(texts: list[str], keys: dict[str, str], port: int, cache: int, ready: Event) -> None:
    import asyncio

    async def main() -> None:
        zone = Zone.from_texts(ZONE, texts)
        acl = TransferAcl(keys=frozenset({n.controller_key_name(ZONE)}))
        policy = network_policy(ZONE, ["bench"])
        settings = EngineSettings(transfer=acl, answer_cache=cache)
        server = DnsServer(zone, keys, policy, settings=settings)
        await server.start(HOST, port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def embedded(zone: Zone, keys: dict[str, str], cache: int) -> Iterator[int]:
    port, ready = free_port(HOST), multiprocessing.Event()
    args = (zone.to_texts(), keys, port, cache, ready)
    process = multiprocessing.Process(target=_serve_embedded, args=args)
    process.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("embedded server did not start")
        yield port
    finally:
        process.terminate()
        process.join(10)


@contextmanager
def bind(zone: Zone, keys: dict[str, str], workdir: Path) -> Iterator[int]:
    port = free_port(HOST)
    acl = TransferAcl(keys=frozenset({n.controller_key_name(ZONE)}))
    server = BindServer(
        workdir / "bind", zone, keys, network_policy(ZONE, ["bench"]), port=port, transfer=acl
    )
    try:
        server.start()
        yield port
    finally:
        server.stop()


# --- load ------------------------------------------------------------------------------------------


def dnsperf_load(port: int, data: Path, duration: float, clients: int) -> tuple[float, float | None, int]:
    argv = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(data), "-l", str(duration), "-c", str(clients)]
    argv += ["-T", "1", "-q", "200", "-t", "2"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    qps = float(_field(out, r"Queries per second:\s+([\d.]+)"))
    latency = float(_field(out, r"Average Latency \(s\):\s+([\d.]+)")) * 1000
    lost = int(_field(out, r"Queries lost:\s+(\d+)"))
    return qps, latency, lost


def _field(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected dnsperf output: {text[-500:]}")
    return match.group(1)


def _python_worker(
    port: int, wires: list[bytes], duration: float, window: int, out: Queue[tuple[int, int]]
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    sock.settimeout(0.5)
    done, sent, end = 0, 0, time.monotonic() + duration
    for _ in range(window):
        sock.send(wires[sent % len(wires)])
        sent += 1
    while time.monotonic() < end:
        try:
            sock.recv(65535)
        except TimeoutError:
            sock.send(wires[sent % len(wires)])  # lost: keep the window full
            sent += 1
            continue
        done += 1
        sock.send(wires[sent % len(wires)])
        sent += 1
    out.put((done, sent - done - window))


def python_load(
    port: int, asked: list[tuple[str, str]], duration: float, workers: int, window: int
) -> tuple[float, float | None, int]:
    wires = [dns.message.make_query(name, rdtype).to_wire() for name, rdtype in asked]
    results: Queue[tuple[int, int]] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_python_worker, args=(port, wires, duration, window, results))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    totals = [results.get(timeout=duration + 30) for _ in procs]
    for proc in procs:
        proc.join(10)
    done = sum(t[0] for t in totals)
    return done / duration, None, max(0, sum(t[1] for t in totals))


# --- update latency -----------------------------------------------------------------------------------


def update_latency(port: int, key: tuple[str, str], rounds: int) -> tuple[list[float], list[float]]:
    updater = DnsUpdater(HOST, port, ZONE, *key, timeout=5)
    query_name = n.host_name("bench", ZONE)
    acks, visible = [], []
    for i in range(rounds):
        address = f"fd00:5b::{i + 1:x}"
        start = time.perf_counter()
        updater.replace_host("bench", address, None)
        acks.append(time.perf_counter() - start)
        visible.append(_wait_visible(port, query_name, address, start))
    return acks, visible


def _wait_visible(port: int, name: dns.name.Name, address: str, start: float) -> float:
    query = dns.message.make_query(name, "AAAA")
    deadline = start + 5
    while time.perf_counter() < deadline:
        response = dns.query.udp(query, HOST, port=port, timeout=1)
        if any(rd.to_text() == address for rrset in response.answer for rd in rrset):
            return time.perf_counter() - start
    raise RuntimeError(f"{address} not visible after 5 s")


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))  # nearest-rank
    return ordered[min(rank, len(ordered)) - 1] * 1000


# --- main --------------------------------------------------------------------------------------------


def measure(
    name: str,
    start: Callable[[], AbstractContextManager[int]],
    args: argparse.Namespace,
    key: tuple[str, str],
    data: Path,
    asked: list[tuple[str, str]],
) -> Figures:
    with start() as port:
        if args.load == "dnsperf":
            qps, latency, lost = dnsperf_load(port, data, args.duration, args.clients)
        else:
            qps, latency, lost = python_load(port, asked, args.duration, args.workers, args.window)
        acks, visible = update_latency(port, key, args.rounds)
    return Figures(name, qps, latency, lost, pct(acks, 50), pct(acks, 99), pct(visible, 50), pct(visible, 99))


ROWS = [
    ("queries per second (UDP)", "qps", "{:.0f}/s"),
    ("query latency avg (dnsperf)", "query_latency_ms", "{:.3f} ms"),
    ("update ack p50", "update_ack_p50_ms", "{:.2f} ms"),
    ("update ack p99", "update_ack_p99_ms", "{:.2f} ms"),
    ("update visible p50", "visible_p50_ms", "{:.2f} ms"),
    ("update visible p99", "visible_p99_ms", "{:.2f} ms"),
]


def report(results: list[Figures], args: argparse.Namespace) -> None:
    """One column per server, then each embedded figure as a ratio to BIND's (the last column)."""
    setup = (
        f"{args.hosts} hosts, load={args.load}, {args.duration:.0f} s per server, {args.rounds} update rounds"
    )
    print(f"\nDNS benchmark: {setup}")
    header = "".join(f"{f.server:>18}" for f in results)
    ratios = "".join(f"{f.server + '/bind':>24}" for f in results[:-1])
    print(f"{'metric':28}{header}{ratios}")
    for label, attr, fmt in ROWS:
        values = [getattr(f, attr) for f in results]
        if None in values:
            continue
        cells = "".join(f"{fmt.format(v):>18}" for v in values)
        print(f"{label:28}{cells}" + "".join(f"{v / values[-1]:>23.3f}x" for v in values[:-1]))
    print(f"{'queries lost':28}" + "".join(f"{f.lost:>18}" for f in results))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4, help="dnsperf clients")
    parser.add_argument("--workers", type=int, default=2, help="python load processes")
    parser.add_argument("--window", type=int, default=64, help="outstanding queries per python worker")
    parser.add_argument(
        "--load", choices=["dnsperf", "python"], default="dnsperf" if shutil.which("dnsperf") else "python"
    )
    parser.add_argument("--answer-cache", type=int, default=4096, help="embedded server's answer cache size")
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if shutil.which("named") is None:
        print("BIND 9 is not installed (apt-get install --no-install-recommends bind9)", file=sys.stderr)
        return 1
    host_key, ctl_key = (
        new_tsig_key(n.host_key_name("bench", ZONE)),
        new_tsig_key(n.controller_key_name(ZONE)),
    )
    keys, zone, asked = dict([host_key, ctl_key]), bench_zone(args.hosts), questions(args.hosts)
    with tempfile.TemporaryDirectory(prefix="ztos-bench-dns-") as tmp:
        workdir = Path(tmp)
        data = workdir / "queries.txt"
        data.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in asked))
        starters: list[tuple[str, Callable[[], AbstractContextManager[int]]]] = [
            ("embedded", lambda: embedded(zone, keys, args.answer_cache)),
            ("embedded-nocache", lambda: embedded(zone, keys, 0)),
            ("bind", lambda: bind(zone, keys, workdir)),
        ]
        results = [measure(name, start, args, host_key, data, asked) for name, start in starters]
    report(results, args)
    if args.json_out:
        machine = {
            "python": platform.python_version(),
            "cpus": multiprocessing.cpu_count(),
            "kernel": platform.release(),
        }
        body = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine}
        args.json_out.write_text(json.dumps({**body, "results": [asdict(f) for f in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
