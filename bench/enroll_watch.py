"""Benchmark: enrolment throughput/latency and watch (change feed) latency.

Starts a real controller process on loopback (``ztos init`` then ``ztos
controller serve`` on a free port, in a temporary directory) and drives it through
the real HTTPS API:

1. Enrol ``--nodes`` hosts. For each one the admin creates a bootstrap token
   (``POST /api/v1/tokens``, mTLS with the admin identity) and the host posts
   ``/api/v1/enroll`` with its own CSR and WireGuard public key (no client
   certificate). ``--concurrency`` worker threads each keep one admin and one
   anonymous keep-alive connection, so TLS handshakes are not what is measured.
2. Watch latency: a node long-polls ``GET /api/v1/watch?since=REV&timeout=10``
   while the admin revokes another node at a random moment; latency is the
   time from the write's HTTP response to the watcher's return.

Every figure is also shown as a ratio against a baseline measured in the same
run: an unauthenticated ``GET /api/v1/healthz`` over the same kind of
keep-alive TLS connection (at the same concurrency for enrolment, one client
for watch).

Usage: ``.venv/bin/python bench/enroll_watch.py [--nodes N] [--concurrency C]
[--watch-rounds R] [--json-out FILE] [--time-limit SECONDS]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.client import tls_context
from ztos.enroll.identity_dir import IdentityDir
from ztos.keys import generate_wg_keypair

ZTOS = [sys.executable, "-m", "ztos"]

WATCH_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a failed request, a deadline)."""


@dataclass
class Deadline:
    at: float

    def check(self, what: str) -> None:
        if time.monotonic() > self.at:
            raise BenchError(f"time limit reached during {what}")


@dataclass
class Controller:
    """A controller process started by this benchmark (``ztos init`` + ``controller serve``)."""

    url: str
    home: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_controller(work: Path, controller: Controller, deadline: Deadline) -> None:
    """Fill in ``controller.process``; the caller's ``finally`` stops it even if this fails."""
    db, log = work / "controller" / "directory.db", work / "controller.log"
    env = {**os.environ, "ZTOS_HOME": str(controller.home)}
    subprocess.run(
        [*ZTOS, "init", "--db", str(db), "--controller-url", controller.url],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = controller.url.rsplit(":", 1)[1]
    with log.open("ab") as out:
        controller.process = subprocess.Popen(
            [*ZTOS, "controller", "serve", "--db", str(db), "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    verify = tls_context(IdentityDir(controller.home).ca_cert, None)
    until = min(deadline.at, time.monotonic() + 30)
    while time.monotonic() < until:
        if controller.process.poll() is not None:
            raise BenchError(f"controller exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{controller.url}/api/v1/healthz", verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise BenchError(f"controller not healthy after 30 s: {log.read_text()[-2000:]}")


@dataclass(frozen=True)
class Host:
    """One enrolling host's locally generated material."""

    name: str
    key_pem: bytes
    csr_pem: str
    wg_public_key: str


@dataclass
class Samples:
    values_s: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values_s.append(seconds)

    def pct_ms(self, q: float) -> float:
        return percentile(self.values_s, q) * 1000.0

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.values_s),
            "p50_ms": round(self.pct_ms(50), 3),
            "p99_ms": round(self.pct_ms(99), 3),
            "mean_ms": round(statistics.fmean(self.values_s) * 1000.0, 3),
            "max_ms": round(max(self.values_s) * 1000.0, 3),
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation), q in 0..100."""
    if not values:
        raise BenchError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Lane:
    """One client's keep-alive connections: admin (mTLS) and anonymous (enrolling host)."""

    admin: httpx.Client
    anon: httpx.Client


class ClientPool:
    """A fixed set of lanes; a job borrows one, so connections (and TLS sessions) are reused."""

    def __init__(self, url: str, admin_ctx: ssl.SSLContext, anon_ctx: ssl.SSLContext, size: int) -> None:
        self.lanes: list[Lane] = [
            Lane(
                httpx.Client(base_url=url, verify=admin_ctx, timeout=REQUEST_TIMEOUT_S),
                httpx.Client(base_url=url, verify=anon_ctx, timeout=REQUEST_TIMEOUT_S),
            )
            for _ in range(size)
        ]
        self.free: queue.Queue[Lane] = queue.Queue()
        for lane in self.lanes:
            self.free.put(lane)

    @contextmanager
    def lane(self) -> Iterator[Lane]:
        lane = self.free.get(timeout=REQUEST_TIMEOUT_S * 2)
        try:
            yield lane
        finally:
            self.free.put(lane)

    def warm(self) -> None:
        """Open every connection once so no handshake lands in a measured sample."""
        for lane in self.lanes:
            checked(lane.admin.get("/api/v1/healthz"), "warm-up (admin)")
            checked(lane.anon.get("/api/v1/healthz"), "warm-up (anonymous)")

    def close(self) -> None:
        for lane in self.lanes:
            lane.admin.close()
            lane.anon.close()


def checked(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise BenchError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


def make_hosts(count: int) -> list[Host]:
    hosts = []
    for i in range(count):
        name = f"bench-{i:05d}"
        key = pki.generate_private_key()
        csr = pki.make_csr(key, name).public_bytes(Encoding.PEM).decode()
        hosts.append(Host(name, pki.key_to_pem(key), csr, generate_wg_keypair().public_key))
    return hosts


def run_pool(concurrency: int, jobs: list[Callable[[], None]], deadline: Deadline, what: str) -> float:
    """Run ``jobs`` on ``concurrency`` threads; return wall seconds. Stops at the deadline."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(job) for job in jobs]
        for future in futures:
            remaining = max(0.1, deadline.at - time.monotonic())
            try:
                future.result(timeout=remaining)
            except TimeoutError as exc:
                for other in futures:
                    other.cancel()
                raise BenchError(f"time limit reached during {what}") from exc
            except BaseException:
                for other in futures:
                    other.cancel()
                raise
    return time.perf_counter() - start


def bench_healthz(
    pool: ClientPool, count: int, concurrency: int, deadline: Deadline
) -> tuple[Samples, float]:
    samples, lock = Samples(), threading.Lock()

    def job() -> None:
        with pool.lane() as lane:
            t0 = time.perf_counter()
            checked(lane.anon.get("/api/v1/healthz"), "healthz")
            elapsed = time.perf_counter() - t0
        with lock:
            samples.add(elapsed)

    wall = run_pool(concurrency, [job] * count, deadline, f"healthz x{concurrency}")
    return samples, wall


@dataclass
class EnrolResult:
    token: Samples
    enrol: Samples
    flow: Samples
    wall_s: float
    certificates: dict[str, str]


def bench_enrol(pool: ClientPool, hosts: list[Host], concurrency: int, deadline: Deadline) -> EnrolResult:
    token_s, enrol_s, flow_s = Samples(), Samples(), Samples()
    certificates: dict[str, str] = {}
    lock = threading.Lock()

    def enrol_one(host: Host) -> None:
        with pool.lane() as lane:
            t0 = time.perf_counter()
            created = checked(
                lane.admin.post("/api/v1/tokens", json={"node_name": host.name, "ttl_seconds": 3600}),
                f"token for {host.name}",
            )
            t1 = time.perf_counter()
            body = {
                "token": created["token"],
                "node_name": host.name,
                "csr_pem": host.csr_pem,
                "wg_public_key": host.wg_public_key,
                "endpoints": [],
            }
            response = checked(lane.anon.post("/api/v1/enroll", json=body), f"enrol {host.name}")
            t2 = time.perf_counter()
        with lock:
            token_s.add(t1 - t0)
            enrol_s.add(t2 - t1)
            flow_s.add(t2 - t0)
            if not certificates:
                certificates[host.name] = response["certificate_pem"]

    jobs: list[Callable[[], None]] = [partial(enrol_one, host) for host in hosts]
    wall = run_pool(concurrency, jobs, deadline, "enrolment")
    return EnrolResult(token_s, enrol_s, flow_s, wall, certificates)


def node_context(ca_file: Path, work: Path, host: Host, cert_pem: str) -> ssl.SSLContext:
    identity = IdentityDir(work / host.name)
    identity.root.mkdir(parents=True, mode=0o700)
    shutil.copy(ca_file, identity.ca_cert)
    pki.write_private(identity.tls_key, host.key_pem)
    identity.tls_cert.write_text(cert_pem)
    return tls_context(identity.ca_cert, identity)


def head_revision(client: httpx.Client, deadline: Deadline) -> int:
    rev = 0
    while True:
        deadline.check("reading the change feed")
        page = checked(client.get("/api/v1/watch", params={"since": rev, "timeout": 0}), "watch")
        if page["revision"] == rev:
            return rev
        rev = int(page["revision"])


@dataclass
class WatchResult:
    after_ack: Samples
    after_send: Samples
    write: Samples
    timeouts: int


def bench_watch(
    url: str,
    watcher_ctx: ssl.SSLContext,
    admin_ctx: ssl.SSLContext,
    victims: list[str],
    rounds: int,
    deadline: Deadline,
) -> WatchResult:
    after_ack, after_send, write = Samples(), Samples(), Samples()
    timeouts = 0
    rng = random.Random(1)
    with (
        httpx.Client(base_url=url, verify=watcher_ctx, timeout=WATCH_TIMEOUT_S + 10) as watcher,
        httpx.Client(base_url=url, verify=admin_ctx, timeout=REQUEST_TIMEOUT_S) as writer,
    ):
        rev = head_revision(watcher, deadline)
        checked(writer.get("/api/v1/healthz"), "writer warm-up")
        for i in range(rounds):
            deadline.check("watch")
            victim = victims[i % len(victims)]
            result: dict[str, Any] = {}

            def watch(since: int = rev, out: dict[str, Any] = result) -> None:
                try:
                    response = watcher.get(
                        "/api/v1/watch", params={"since": since, "timeout": WATCH_TIMEOUT_S}
                    )
                    out["returned"] = time.perf_counter()
                    out["body"] = checked(response, "watch")
                except Exception as exc:  # reported by the main thread
                    out["error"] = exc

            thread = threading.Thread(target=watch, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.02, 0.25))  # the write lands at a random moment
            t0 = time.perf_counter()
            checked(
                writer.post(f"/api/v1/nodes/{victim}/revoke", json={"reason": "bench"}),
                f"revoke {victim}",
            )
            t1 = time.perf_counter()
            thread.join(WATCH_TIMEOUT_S + 15)
            if thread.is_alive():
                raise BenchError("watcher did not return")
            if "error" in result:
                raise BenchError(f"watch failed: {result['error']}")
            body = result["body"]
            seen = {(c["kind"], c["key"]) for c in body["changes"]}
            if ("node", victim) not in seen:
                timeouts += 1  # returned empty (timeout) or without the write: not a sample
            else:
                after_ack.add(result["returned"] - t1)
                after_send.add(result["returned"] - t0)
                write.add(t1 - t0)
            rev = int(body["revision"])
    return WatchResult(after_ack, after_send, write, timeouts)


def ratio(value: float, base: float) -> str:
    if base <= 0:
        return "n/a"
    r = value / base
    return f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def report(
    args: argparse.Namespace,
    health_c: tuple[Samples, float],
    health_1: Samples,
    enrol: EnrolResult,
    watch: WatchResult,
    prep_s: float,
) -> dict[str, Any]:
    hc, hc_wall = health_c
    hc_rate = len(hc.values_s) / hc_wall
    enrol_rate = args.nodes / enrol.wall_s
    # Samples are appended in completion order: the first and last tenth show
    # how latency grows with the number of nodes already in the directory.
    tenth = max(1, len(enrol.enrol.values_s) // 10)
    first, last = Samples(enrol.enrol.values_s[:tenth]), Samples(enrol.enrol.values_s[-tenth:])
    token_first = Samples(enrol.token.values_s[:tenth])
    token_last = Samples(enrol.token.values_s[-tenth:])
    h50, h99, s50, s99 = hc.pct_ms(50), hc.pct_ms(99), health_1.pct_ms(50), health_1.pct_ms(99)

    rows: list[tuple[str, str, str]] = [
        (
            f"healthz x{args.concurrency} (baseline)",
            f"p50 {h50:.2f} ms, p99 {h99:.2f} ms, {hc_rate:.0f}/s",
            "1.0x",
        ),
        ("healthz x1 (baseline)", f"p50 {s50:.2f} ms, p99 {s99:.2f} ms", "1.0x"),
        (
            "nodes enrolled per second",
            f"{enrol_rate:.1f}/s ({args.nodes} in {enrol.wall_s:.1f} s)",
            f"{ratio(enrol_rate, hc_rate)} healthz/s",
        ),
        (
            "POST /enroll p50",
            f"{enrol.enrol.pct_ms(50):.2f} ms",
            f"{ratio(enrol.enrol.pct_ms(50), h50)} healthz p50",
        ),
        (
            "POST /enroll p99",
            f"{enrol.enrol.pct_ms(99):.2f} ms",
            f"{ratio(enrol.enrol.pct_ms(99), h99)} healthz p99",
        ),
        (
            f"POST /enroll p50, first/last {tenth}",
            f"{first.pct_ms(50):.2f} / {last.pct_ms(50):.2f} ms",
            f"{ratio(first.pct_ms(50), h50)} / {ratio(last.pct_ms(50), h50)} healthz p50",
        ),
        (
            "POST /tokens p50",
            f"{enrol.token.pct_ms(50):.2f} ms",
            f"{ratio(enrol.token.pct_ms(50), h50)} healthz p50",
        ),
        (
            "POST /tokens p99",
            f"{enrol.token.pct_ms(99):.2f} ms",
            f"{ratio(enrol.token.pct_ms(99), h99)} healthz p99",
        ),
        (
            f"POST /tokens p50, first/last {tenth}",
            f"{token_first.pct_ms(50):.2f} / {token_last.pct_ms(50):.2f} ms",
            f"{ratio(token_first.pct_ms(50), h50)} / {ratio(token_last.pct_ms(50), h50)} healthz p50",
        ),
        (
            "token+enrol p50",
            f"{enrol.flow.pct_ms(50):.2f} ms",
            f"{ratio(enrol.flow.pct_ms(50), h50)} healthz p50",
        ),
        (
            "token+enrol p99",
            f"{enrol.flow.pct_ms(99):.2f} ms",
            f"{ratio(enrol.flow.pct_ms(99), h99)} healthz p99",
        ),
    ]
    if watch.after_ack.values_s:
        rows += [
            (
                "watch after write ack p50",
                f"{watch.after_ack.pct_ms(50):.2f} ms",
                f"{ratio(watch.after_ack.pct_ms(50), s50)} healthz x1 p50",
            ),
            (
                "watch after write ack p99",
                f"{watch.after_ack.pct_ms(99):.2f} ms",
                f"{ratio(watch.after_ack.pct_ms(99), s99)} healthz x1 p99",
            ),
            (
                "watch after write sent p50",
                f"{watch.after_send.pct_ms(50):.2f} ms",
                f"{ratio(watch.after_send.pct_ms(50), s50)} healthz x1 p50",
            ),
            (
                "watch after write sent p99",
                f"{watch.after_send.pct_ms(99):.2f} ms",
                f"{ratio(watch.after_send.pct_ms(99), s99)} healthz x1 p99",
            ),
            (
                "revoke (the write) p50",
                f"{watch.write.pct_ms(50):.2f} ms",
                f"{ratio(watch.write.pct_ms(50), s50)} healthz x1 p50",
            ),
        ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print()
    print(
        f"ZTOS enrol/watch benchmark: {args.nodes} nodes, concurrency {args.concurrency}, "
        f"{args.watch_rounds} watch rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'metric':<{width}}  {'value':<{vwidth}}  ratio to baseline")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 28}")
    for name, value, rel in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {rel}")
    print(
        f"(client-side key/CSR generation for {args.nodes} hosts: {prep_s:.1f} s, not timed above;"
        f" watch rounds without the write: {watch.timeouts})"
    )

    return {
        "benchmark": "enroll_watch",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "params": {
            "nodes": args.nodes,
            "concurrency": args.concurrency,
            "watch_rounds": args.watch_rounds,
        },
        "baseline": {
            f"healthz_x{args.concurrency}": {**hc.summary(), "per_second": round(hc_rate, 1)},
            "healthz_x1": health_1.summary(),
        },
        "enrol": {
            "nodes_per_second": round(enrol_rate, 2),
            "wall_s": round(enrol.wall_s, 2),
            "enroll_request": enrol.enrol.summary(),
            "token_request": enrol.token.summary(),
            "token_plus_enroll": enrol.flow.summary(),
            "enroll_first_tenth": first.summary(),
            "enroll_last_tenth": last.summary(),
            "token_first_tenth": token_first.summary(),
            "token_last_tenth": token_last.summary(),
            "ratios": {
                "nodes_per_second_vs_healthz_per_second": round(enrol_rate / hc_rate, 4),
                "enroll_p50_vs_healthz_p50": round(enrol.enrol.pct_ms(50) / h50, 2),
                "enroll_p99_vs_healthz_p99": round(enrol.enrol.pct_ms(99) / h99, 2),
            },
        },
        "watch": {
            "after_write_ack": watch.after_ack.summary() if watch.after_ack.values_s else None,
            "after_write_sent": watch.after_send.summary() if watch.after_send.values_s else None,
            "write_request": watch.write.summary() if watch.write.values_s else None,
            "rounds_without_write": watch.timeouts,
            "ratios": {
                "after_ack_p50_vs_healthz_x1_p50": round(watch.after_ack.pct_ms(50) / s50, 2)
                if watch.after_ack.values_s
                else None,
                "after_ack_p99_vs_healthz_x1_p99": round(watch.after_ack.pct_ms(99) / s99, 2)
                if watch.after_ack.values_s
                else None,
            },
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=1000, help="hosts to enrol (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--watch-rounds", type=int, default=200, help="watch samples (default 200)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write results as JSON here")
    parser.add_argument(
        "--time-limit", type=float, default=600.0, help="give up after this many seconds (default 600)"
    )
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.concurrency < 1 or args.watch_rounds < 1:
        parser.error("need --nodes >= 2, --concurrency >= 1, --watch-rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(time.monotonic() + args.time_limit)
    work = Path(tempfile.mkdtemp(prefix="ztos-bench-"))
    controller = Controller(url=f"https://127.0.0.1:{free_port()}", home=work / "admin")
    pool: ClientPool | None = None
    try:
        print(f"starting a controller in {work} ...", flush=True)
        start_controller(work, controller, deadline)
        admin = IdentityDir(controller.home)
        admin_ctx, anon_ctx = tls_context(admin.ca_cert, admin), tls_context(admin.ca_cert, None)
        pool = ClientPool(controller.url, admin_ctx, anon_ctx, args.concurrency)
        pool.warm()

        print(f"generating keys and CSRs for {args.nodes} hosts ...", flush=True)
        t0 = time.perf_counter()
        hosts = make_hosts(args.nodes)
        prep_s = time.perf_counter() - t0

        print("baseline: healthz ...", flush=True)
        health_c = bench_healthz(pool, max(args.nodes, 500), args.concurrency, deadline)
        health_1, _ = bench_healthz(pool, max(args.watch_rounds, 200), 1, deadline)

        print(f"enrolling {args.nodes} hosts with {args.concurrency} clients ...", flush=True)
        enrol = bench_enrol(pool, hosts, args.concurrency, deadline)

        print(f"watch latency, {args.watch_rounds} rounds ...", flush=True)
        watcher_name, cert_pem = next(iter(enrol.certificates.items()))
        watcher_host = next(h for h in hosts if h.name == watcher_name)
        watcher_ctx = node_context(admin.ca_cert, work / "hosts", watcher_host, cert_pem)
        victims = [h.name for h in hosts if h.name != watcher_name]
        watch = bench_watch(controller.url, watcher_ctx, admin_ctx, victims, args.watch_rounds, deadline)
        if not watch.after_ack.values_s:
            raise BenchError("the watcher never saw a write")

        results = report(args, health_c, health_1, enrol, watch, prep_s)
        if args.json_out is not None:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(results, indent=2) + "\n")
            print(f"results written to {args.json_out}")
        return 0
    except (BenchError, subprocess.SubprocessError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if pool is not None:
            pool.close()
        controller.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
