"""Benchmark: the ZTOS mesh in real lab namespaces (throughput, first packet, revocation, joins).

Every figure is printed next to a baseline measured in the same run, on the
same machine, and as a ratio to it:

1. **Throughput** (iperf3 TCP, ``-P 1``) over the ZTOS overlay between two lab
   hosts, against a wireguard-go pair configured *by hand* (``wireguard-go``,
   ``wg set``, ``ip``) between the same two namespaces at the same MTU, runs
   alternated. Then the same in a lab with a 9000-byte underlay: ZTOS
   throughput there against the 1500-byte figure. The WireGuard MTU each
   agent chose is read back with ``ip link show``.
2. **First packet**: a fresh host joins a 3-host lab (``runner.add_host``: profile
   only, enrolment included); from spawning its agent to the moment an ICMPv6
   echo from it is answered by every other host. Baseline: the hand-configured
   pair's cold start (spawn ``wireguard-go`` on one side, ``wg set``/``ip`` it,
   ping the waiting side until it answers), i.e. the same job done by hand.
3. **Revocation**: ``POST /api/v1/nodes/NAME/revoke`` from a thread inside the
   underlay namespace, to the revoked host's key being gone from every peer's
   WireGuard (read via UAPI every 5 ms) and its 10 ms echo stream going
   unanswered. Each round revokes the host that joined in (2) and removes it.
   Baseline: the hand pair's handshake time (``wg set`` of the peer on both
   sides to the first echo reply).
4. **Join convergence** in a 10-host lab: from the new host's enrolment (the
   controller's ``enrolled_at``, and its ``enrolment.json`` appearing) until all
   10 others have its key as a WireGuard peer. Same baseline as (3).

Probing is done from this process with sockets opened inside the lab's
namespaces (see ``mesh_net``), so no probe pays for a fork. Every wait is
bounded; every lab is torn down (``runner.down``) even on failure or SIGTERM.

Usage: ``.venv/bin/python bench/mesh.py [--quick] [--json-out FILE]`` (root).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from mesh_hand import HandPair
from mesh_net import Pinger, enter_for_good, link_mtu, netns_run, uapi_peers, wait_until
from ztos.client import ApiClient
from ztos.dataplane import links
from ztos.enroll.identity_dir import IdentityDir
from ztos.lab import procs, runner
from ztos.lab.topology import WG_SOCKET_DIR, LabHost, LabTopology

IPERF_PORT = 5201
JOIN_TIMEOUT = 30.0
REVOKE_TIMEOUT = 10.0
MESH_TIMEOUT = 60.0
POLL = 0.005
PEER_POLL = 0.01

TARGET_THROUGHPUT_RATIO = 0.95
TARGET_JUMBO_RATIO = 2.5
TARGET_FIRST_PACKET_S = 1.0
TARGET_REVOKE_P99_S = 1.0
TARGET_JOIN_S = 1.0


class BenchError(Exception):
    """The benchmark could not measure what it set out to."""


@dataclass
class Deadline:
    at: float

    def check(self, what: str) -> None:
        if time.monotonic() > self.at:
            raise BenchError(f"time limit reached before {what}")


# --- small helpers ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def node_of(host: LabHost) -> dict[str, Any]:
    node = json.loads(host.enrolment.read_text())["node"]
    assert isinstance(node, dict)
    return node


def overlay6(host: LabHost) -> str:
    return str(node_of(host)["overlay_ipv6"]).split("/")[0]


def hex_key(b64: str) -> str:
    return base64.b64decode(b64).hex()


def wall_to_monotonic(text: str) -> float:
    """A controller timestamp (ISO 8601, UTC) on this process's monotonic clock."""
    wall = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return wall - time.time() + time.monotonic()


@contextmanager
def lab(name: str, nodes: int, mtu: int, interval: float) -> Iterator[LabTopology]:
    """A lab that is always torn down, whatever happens inside."""
    topology = LabTopology(name, nodes, underlay_mtu=mtu)
    try:
        runner.up(topology, reconcile_interval=interval)
        yield topology
    finally:
        runner.down(name)


def wait_mesh(hosts: list[LabHost], timeout: float = MESH_TIMEOUT) -> None:
    """Every host enrolled and answering ICMPv6 echo from every other host."""
    deadline = time.monotonic() + timeout
    if wait_until(lambda: all(h.enrolment.exists() for h in hosts), timeout, 0.05) is None:
        missing = [h.name for h in hosts if not h.enrolment.exists()]
        raise BenchError(f"hosts {missing} did not enrol within {timeout:g}s")
    wait_until(lambda: all(_readable(h) for h in hosts), 5.0, 0.02)
    addresses = {h.name: overlay6(h) for h in hosts}
    for source in hosts:
        targets = [addresses[h.name] for h in hosts if h is not source]
        with Pinger(source.netns) as pinger:
            first = pinger.first_replies(targets, max(0.1, deadline - time.monotonic()))
        silent = [t for t, at in first.items() if at is None]
        if silent:
            raise BenchError(f"{source.name} gets no echo reply from {silent} within {timeout:g}s")


def _readable(host: LabHost) -> bool:
    try:
        node_of(host)
    except (OSError, ValueError, KeyError):
        return False
    return True


@contextmanager
def spawn_clock() -> Iterator[list[float]]:
    """Record the monotonic time at which ``runner`` spawns an agent.

    ``runner.add_host`` builds the namespace and the profile first and spawns
    the agent last; wrapping its spawn step is the only way to start the clock
    at the spawn itself rather than around the namespace and token work.
    """
    original = runner._spawn_agent
    spawned: list[float] = []

    def timed(host: LabHost, reconcile_interval: float) -> int:
        spawned.append(time.monotonic())
        return original(host, reconcile_interval)

    runner._spawn_agent = timed
    try:
        yield spawned
    finally:
        runner._spawn_agent = original


def remove_host(lab_name: str, host: LabHost) -> None:
    """Stop a (revoked) host's agent and wireguard-go, delete its namespace and socket."""
    runner.kill_agent(lab_name, host.name)
    procs.stop(procs.pids_in_netns([host.netns]) | runner.agent_pids(host))
    links.delete_netns(host.netns)
    (WG_SOCKET_DIR / f"{host.wg_interface}.sock").unlink(missing_ok=True)


class AdminApi:
    """The lab admin's API client, run on one thread that lives in the underlay namespace."""

    def __init__(self, topology: LabTopology) -> None:
        self.pool = ThreadPoolExecutor(1, initializer=enter_for_good, initargs=(topology.underlay_netns,))
        self.client = ApiClient.for_identity(
            [topology.controller_url], IdentityDir(topology.admin_home), timeout=10
        )
        self.call("GET", "/api/v1/nodes")  # connect and handshake before anything is timed

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.pool.submit(self.client.request, method, path, **kwargs).result(timeout=30)

    def close(self) -> None:
        self.pool.submit(self.client.close).result(timeout=10)
        self.pool.shutdown()


# --- 1. throughput ------------------------------------------------------------------------------


def iperf(server: LabHost, client: LabHost, address: str, seconds: float) -> float:
    """iperf3 TCP, one stream, ``client`` -> ``server`` bound to ``address``; bits/s received."""
    argv = ["iperf3", "-s", "-1", "-B", address, "-p", str(IPERF_PORT)]
    process = subprocess.Popen(
        ["ip", "netns", "exec", server.netns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if wait_until(lambda: procs.listening(process.pid, IPERF_PORT), 5.0, 0.01) is None:
            raise BenchError(f"iperf3 server in {server.netns} did not listen within 5s")
        out = netns_run(
            client.netns,
            *["iperf3", "-c", address, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-P", "1", "-J"],
            timeout=seconds + 30,
            check=False,
        )
        try:
            data = json.loads(out)
            return float(data["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"iperf3 to {address} failed: {out[-300:]}") from exc
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@dataclass
class Throughput:
    underlay_mtu: int
    wg_mtus: dict[str, int]
    ztos_bps: list[float] = field(default_factory=list)
    hand_bps: list[float] = field(default_factory=list)
    hand_handshake_s: list[float] = field(default_factory=list)
    hand_cold_start_s: list[float] = field(default_factory=list)

    @property
    def ztos(self) -> float:
        return statistics.median(self.ztos_bps)

    @property
    def hand(self) -> float:
        return statistics.median(self.hand_bps)


def bench_throughput(
    name: str, mtu: int, rounds: int, seconds: float, samples: int, interval: float, deadline: Deadline
) -> Throughput:
    deadline.check(f"the throughput lab at MTU {mtu}")
    with lab(name, 2, mtu, interval) as topology:
        h1, h2 = topology.hosts
        wait_mesh([h1, h2])
        result = Throughput(mtu, {h.name: link_mtu(h.netns, h.wg_interface) for h in (h1, h2)})
        print(
            f"  lab {name}: underlay MTU {mtu}, WireGuard MTU chosen by the agents "
            + ", ".join(f"{k} {v}" for k, v in result.wg_mtus.items()),
            flush=True,
        )
        pair = HandPair.create(name, (h1.netns, h2.netns), (str(h1.ipv6), str(h2.ipv6)), result.wg_mtus["h1"])
        try:
            pair.up()
            with Pinger(h2.netns) as pinger:
                if pinger.first_replies([pair.a.overlay], 10.0)[pair.a.overlay] is None:
                    raise BenchError("the hand-configured pair does not pass traffic")
            print(f"  hand pair {pair.a.ifname}/{pair.b.ifname}: MTU {link_mtu(h1.netns, pair.a.ifname)}")
            for _ in range(samples):
                result.hand_handshake_s.append(pair.handshake_sample())
                result.hand_cold_start_s.append(pair.cold_start_sample())
            target = overlay6(h1)
            for index in range(rounds):
                deadline.check("an iperf3 round")
                order = ("ztos", "hand") if index % 2 == 0 else ("hand", "ztos")
                for which in order:
                    if which == "ztos":
                        bps = iperf(h1, h2, target, seconds)
                        result.ztos_bps.append(bps)
                    else:
                        bps = iperf(h1, h2, pair.a.overlay, seconds)
                        result.hand_bps.append(bps)
                    print(f"  MTU {mtu} round {index + 1} {which:4}: {bps / 1e9:.3f} Gbit/s", flush=True)
        finally:
            pair.close()
    return result


# --- 2/3/4. joining and revocation ------------------------------------------------------------------


@dataclass
class JoinRound:
    lab_hosts: int
    host: str
    spawn_to_enrol_file_s: float | None = None
    spawn_to_controller_enrol_s: float | None = None
    spawn_to_wg_socket_s: float | None = None
    spawn_to_first_packet_all_s: float | None = None
    first_packet_s: list[float | None] = field(default_factory=list)
    controller_enrol_to_all_peers_s: float | None = None
    file_to_all_peers_s: float | None = None
    peer_added_s: list[float | None] = field(default_factory=list)


@dataclass
class RevokeRound:
    lab_hosts: int
    host: str
    api_ack_s: float
    keys_gone_all_s: float | None
    key_gone_s: list[float | None]
    last_reply_s: float | None
    replies_after_cut: int
    revoked_ping_fails: bool

    @property
    def cut_s(self) -> float | None:
        """Both conditions: every peer dropped the key and no echo reply came back after."""
        if self.keys_gone_all_s is None:
            return None
        return max(self.keys_gone_all_s, self.last_reply_s or 0.0)


def join_round(lab_name: str, peers: list[LabHost]) -> tuple[LabHost, JoinRound]:
    """Add a host and time its enrolment, its peers picking it up and its first packets."""
    with spawn_clock() as spawned:
        host = runner.add_host(lab_name)
    if len(spawned) != 1:
        raise BenchError(f"expected one agent spawn in add_host, saw {len(spawned)}")
    t_spawn = spawned[0]
    result = JoinRound(lab_hosts=len(peers) + 1, host=host.name)
    seen: dict[str, float] = {}
    times: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        key: str | None = None
        socket_path = WG_SOCKET_DIR / f"{host.wg_interface}.sock"
        deadline = time.monotonic() + JOIN_TIMEOUT
        next_peer_poll = 0.0
        while not stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            if "file" not in times and host.enrolment.exists():
                times["file"] = now
            if key is None and "file" in times and _readable(host):
                node = node_of(host)
                key = hex_key(str(node["wg_public_key"]))
                times["controller"] = wall_to_monotonic(str(node["enrolled_at"]))
            if "socket" not in times and socket_path.exists():
                times["socket"] = now
            if key is not None and now >= next_peer_poll:
                next_peer_poll = now + PEER_POLL
                for peer in peers:
                    if peer.name not in seen and key in (uapi_peers(peer.wg_interface) or set()):
                        seen[peer.name] = time.monotonic()
                if len(seen) == len(peers) and "socket" in times:
                    return
            time.sleep(POLL)

    watcher = threading.Thread(target=watch, name="join-watch", daemon=True)
    watcher.start()
    targets = [overlay6(p) for p in peers]
    try:
        with Pinger(host.netns) as pinger:
            first = pinger.first_replies(targets, JOIN_TIMEOUT)
    finally:
        watcher.join(JOIN_TIMEOUT)
        stop.set()
        watcher.join(5)
    result.first_packet_s = [None if at is None else at - t_spawn for at in first.values()]
    if all(at is not None for at in first.values()):
        result.spawn_to_first_packet_all_s = max(at for at in first.values() if at is not None) - t_spawn
    if "file" in times:
        result.spawn_to_enrol_file_s = times["file"] - t_spawn
    if "controller" in times:
        result.spawn_to_controller_enrol_s = times["controller"] - t_spawn
    if "socket" in times:
        result.spawn_to_wg_socket_s = times["socket"] - t_spawn
    result.peer_added_s = [seen[p.name] - t_spawn if p.name in seen else None for p in peers]
    if len(seen) == len(peers):
        all_peers = max(seen.values())
        if "controller" in times:
            result.controller_enrol_to_all_peers_s = all_peers - times["controller"]
        if "file" in times:
            result.file_to_all_peers_s = all_peers - times["file"]
    return host, result


def revoke_round(api: AdminApi, victim: LabHost, peers: list[LabHost]) -> RevokeRound:
    """Revoke ``victim`` through the API; time its key leaving every peer and its echoes going dark."""
    key = hex_key(str(node_of(victim)["wg_public_key"]))
    targets = [overlay6(p) for p in peers]
    gone: dict[str, float] = {}
    stop = threading.Event()
    replies: dict[str, list[float]] = {}

    def monitor() -> None:
        with Pinger(victim.netns) as pinger:
            replies.update(pinger.monitor(targets, stop, 0.01))

    def watch() -> None:
        deadline = time.monotonic() + REVOKE_TIMEOUT
        while len(gone) < len(peers) and time.monotonic() < deadline:
            for peer in peers:
                if peer.name not in gone:
                    current = uapi_peers(peer.wg_interface)
                    if current is not None and key not in current:
                        gone[peer.name] = time.monotonic()
            time.sleep(POLL)

    pinging = threading.Thread(target=monitor, name="revoke-ping", daemon=True)
    pinging.start()
    time.sleep(0.2)  # a few echo rounds answered before the revocation
    watcher = threading.Thread(target=watch, name="revoke-watch", daemon=True)
    t0 = time.monotonic()
    watcher.start()
    api.call("POST", f"/api/v1/nodes/{victim.name}/revoke", json={"reason": "bench/mesh.py"})
    t_ack = time.monotonic()
    watcher.join(REVOKE_TIMEOUT + 5)
    time.sleep(0.3)  # keep probing: nothing may come back once the peers dropped the key
    stop.set()
    pinging.join(5)
    with Pinger(victim.netns) as pinger:
        after = pinger.first_replies(targets, 0.5)
    keys_gone = max(gone.values()) - t0 if len(gone) == len(peers) else None
    answered = [at for times in replies.values() for at in times]
    last_reply = max(answered) - t0 if answered else None
    cut_at = t0 + keys_gone if keys_gone is not None else float("inf")
    return RevokeRound(
        lab_hosts=len(peers) + 1,
        host=victim.name,
        api_ack_s=t_ack - t0,
        keys_gone_all_s=keys_gone,
        key_gone_s=[gone[p.name] - t0 if p.name in gone else None for p in peers],
        last_reply_s=last_reply,
        replies_after_cut=sum(1 for at in answered if at > cut_at),
        revoked_ping_fails=all(at is None for at in after.values()),
    )


def bench_join_revoke(
    name: str, base_hosts: int, rounds: int, interval: float, deadline: Deadline, label: str
) -> tuple[list[JoinRound], list[RevokeRound]]:
    deadline.check(f"the {label} lab")
    joins: list[JoinRound] = []
    revokes: list[RevokeRound] = []
    with lab(name, base_hosts, 1500, interval) as topology:
        peers = list(topology.hosts)
        wait_mesh(peers)
        api = AdminApi(topology)
        try:
            for index in range(rounds):
                deadline.check(f"{label} round {index + 1}")
                time.sleep(0.3)  # let the previous round's agents go quiet
                host, joined = join_round(name, peers)
                joins.append(joined)
                try:
                    if joined.spawn_to_first_packet_all_s is None:
                        raise BenchError(f"{host.name} never reached every peer: {joined}")
                    time.sleep(0.2)
                    revoked = revoke_round(api, host, peers)
                    revokes.append(revoked)
                finally:
                    remove_host(name, host)
                print(
                    f"  {label} round {index + 1} ({host.name}, {joined.lab_hosts} hosts): "
                    f"spawn->enrolled {ms(joined.spawn_to_controller_enrol_s)}, "
                    f"->first packet to all {ms(joined.spawn_to_first_packet_all_s)}; "
                    f"enrol->all peers {ms(joined.controller_enrol_to_all_peers_s)}; "
                    f"revoke: ack {ms(revoked.api_ack_s)}, keys gone {ms(revoked.keys_gone_all_s)}, "
                    f"last reply {ms(revoked.last_reply_s)}, ping fails {revoked.revoked_ping_fails}",
                    flush=True,
                )
        finally:
            api.close()
    return joins, revokes


# --- report -----------------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    value: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def python_start_s(samples: int) -> float:
    times = []
    for _ in range(samples):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def values(items: list[Any], attribute: str) -> list[float]:
    return [v for v in (getattr(i, attribute) for i in items) if v is not None]


def build_rows(
    t1500: Throughput,
    t9000: Throughput,
    joins4: list[JoinRound],
    revokes: list[RevokeRound],
    joins10: list[JoinRound],
    revokes10: list[RevokeRound],
    py_start: float,
) -> list[Row]:
    rows: list[Row] = []
    gbit = 1e9
    ratio = t1500.ztos / t1500.hand
    rows.append(
        Row(
            f"TCP throughput, MTU {t1500.underlay_mtu} (WG {t1500.wg_mtus['h1']}), median",
            f"{t1500.ztos / gbit:.3f} Gbit/s",
            f"hand {t1500.hand / gbit:.3f} Gbit/s",
            f"{ratio:.2f}x",
            f">= {TARGET_THROUGHPUT_RATIO}x",
            ratio >= TARGET_THROUGHPUT_RATIO,
        )
    )
    ratio9 = t9000.ztos / t9000.hand
    rows.append(
        Row(
            f"TCP throughput, MTU {t9000.underlay_mtu} (WG {t9000.wg_mtus['h1']}), median",
            f"{t9000.ztos / gbit:.3f} Gbit/s",
            f"hand {t9000.hand / gbit:.3f} Gbit/s",
            f"{ratio9:.2f}x",
            "(info)",
            None,
        )
    )
    jumbo = t9000.ztos / t1500.ztos
    rows.append(
        Row(
            f"ZTOS throughput MTU {t9000.underlay_mtu} vs {t1500.underlay_mtu}",
            f"{t9000.ztos / gbit:.3f} Gbit/s",
            f"ZTOS@{t1500.underlay_mtu} {t1500.ztos / gbit:.3f} Gbit/s",
            f"{jumbo:.2f}x",
            f">= {TARGET_JUMBO_RATIO}x",
            jumbo >= TARGET_JUMBO_RATIO,
        )
    )
    cold = statistics.median(t1500.hand_cold_start_s)
    handshake = statistics.median(t1500.hand_handshake_s)
    first = values(joins4, "spawn_to_first_packet_all_s")
    if first:
        med = statistics.median(first)
        rows.append(
            Row(
                f"agent spawn -> first packet to all peers, 4 hosts, median (n={len(first)})",
                ms(med),
                f"hand cold start {ms(cold)}",
                f"{med / cold:.1f}x",
                f"< {ms(TARGET_FIRST_PACKET_S)}",
                med < TARGET_FIRST_PACKET_S and len(first) == len(joins4),
            )
        )
        rows.append(
            Row(
                "  ... max",
                ms(max(first)),
                f"hand cold start {ms(cold)}",
                f"{max(first) / cold:.1f}x",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "  ... vs python -c pass",
                ms(med),
                f"python start {ms(py_start)}",
                f"{med / py_start:.1f}x",
                "",
                None,
            )
        )
    enrolled = values(joins4, "spawn_to_controller_enrol_s")
    if enrolled:
        med = statistics.median(enrolled)
        rows.append(Row("  of which spawn -> enrolled (controller), median", ms(med), "", "", "", None))
    sockets = values(joins4, "spawn_to_wg_socket_s")
    if sockets:
        rows.append(
            Row(
                "  of which spawn -> wireguard-go socket, median",
                ms(statistics.median(sockets)),
                "",
                "",
                "",
                None,
            )
        )
    gaps = [
        j.spawn_to_wg_socket_s - j.spawn_to_controller_enrol_s
        for j in joins4
        if j.spawn_to_wg_socket_s is not None and j.spawn_to_controller_enrol_s is not None
    ]
    if gaps:
        rows.append(
            Row(
                "  of which enrolled -> wireguard-go socket, median",
                ms(statistics.median(gaps)),
                "",
                "",
                "",
                None,
            )
        )
    cuts = values(revokes, "cut_s")
    if cuts:
        p50, p99 = statistics.median(cuts), percentile(cuts, 99)
        all_fail = all(r.revoked_ping_fails for r in revokes)
        rows.append(
            Row(
                f"revoke -> dropped by every peer, 4 hosts, p50 (n={len(cuts)})",
                ms(p50),
                f"hand handshake {ms(handshake)}",
                f"{p50 / handshake:.1f}x",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "  ... p99 (keys gone AND echo unanswered)",
                ms(p99),
                f"hand handshake {ms(handshake)}",
                f"{p99 / handshake:.1f}x",
                f"< {ms(TARGET_REVOKE_P99_S)}",
                p99 < TARGET_REVOKE_P99_S and all_fail and len(cuts) == len(revokes),
            )
        )
        acks = [r.api_ack_s for r in revokes]
        rows.append(Row("  of which API ack, p50", ms(statistics.median(acks)), "", "", "", None))
        rows.append(
            Row(
                "  revoked host's ping fails afterwards",
                f"{sum(r.revoked_ping_fails for r in revokes)}/{len(revokes)}",
                "",
                "",
                "all",
                all_fail,
            )
        )
    joined = values(joins10, "controller_enrol_to_all_peers_s")
    if joined:
        worst = max(joined)
        rows.append(
            Row(
                f"join 10-host lab: enrolled -> peer on all 10, max (n={len(joined)})",
                ms(worst),
                f"hand handshake {ms(handshake)}",
                f"{worst / handshake:.1f}x",
                f"< {ms(TARGET_JOIN_S)}",
                worst < TARGET_JOIN_S and len(joined) == len(joins10),
            )
        )
        rows.append(Row("  ... median", ms(statistics.median(joined)), "", "", "", None))
        from_file = values(joins10, "file_to_all_peers_s")
        if from_file:
            rows.append(Row("  ... from enrolment.json appearing, max", ms(max(from_file)), "", "", "", None))
        first10 = values(joins10, "spawn_to_first_packet_all_s")
        if first10:
            rows.append(
                Row(
                    "  spawn -> first packet to all 10, median",
                    ms(statistics.median(first10)),
                    f"hand cold start {ms(cold)}",
                    f"{statistics.median(first10) / cold:.1f}x",
                    "",
                    None,
                )
            )
    cuts10 = values(revokes10, "cut_s")
    if cuts10:
        rows.append(Row(f"revoke in 11-host lab, max (n={len(cuts10)})", ms(max(cuts10)), "", "", "", None))
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("metric", "value", "baseline", "ratio", "target", "met")
    table = [
        (
            r.metric,
            r.value,
            r.baseline,
            r.ratio,
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print("\n" + line)
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def leftovers(names: list[str]) -> list[str]:
    """Namespaces, wireguard-go processes or sockets of this run still present."""
    found = [f"netns {ns}" for ns in links.list_netns() if any(ns.startswith(f"ztl-{n}-") for n in names)]
    for pid in procs.pids_matching(lambda argv: Path(argv[0]).name == "wireguard-go"):
        argv = procs.cmdline(pid)
        if any(arg.startswith((f"zt{n}", n)) for n in names for arg in argv[1:]):
            found.append(f"wireguard-go pid {pid} {' '.join(argv)}")
    found += [f"socket {p}" for p in WG_SOCKET_DIR.glob("*.sock") if any(n in p.name for n in names)]
    return found


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (smoke run)")
    parser.add_argument("--json-out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--reconcile-interval", type=float, default=runner.DEFAULT_RECONCILE_INTERVAL)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds; fail cleanly past it")
    return parser.parse_args(argv)


MAIN_PID = os.getpid()


def _terminate(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds the main process through its ``finally`` blocks (labs torn down).

    pyroute2 creates namespaces in forked ``multiprocessing`` children and
    SIGTERMs them when done; a child inherits this handler and a copy of our
    stack, so it must leave at once instead of unwinding (its ``finally`` would
    run ``runner.down`` on the lab being built).
    """
    if os.getpid() != MAIN_PID:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


@dataclass
class Results:
    t1500: Throughput
    t9000: Throughput
    joins4: list[JoinRound]
    revokes4: list[RevokeRound]
    joins10: list[JoinRound]
    revokes10: list[RevokeRound]
    python_start_s: float


def measure(names: list[str], params: dict[str, Any], deadline: Deadline) -> Results:
    interval = float(params["reconcile_interval"])
    rounds, seconds, samples = (
        int(params["iperf_rounds"]),
        float(params["iperf_seconds"]),
        int(params["hand_samples"]),
    )
    print(f"1. throughput (iperf3 TCP -P 1, {seconds:g} s per run, ZTOS and hand alternated)", flush=True)
    t1500 = bench_throughput(names[0], 1500, rounds, seconds, samples, interval, deadline)
    t9000 = bench_throughput(names[1], 9000, rounds, seconds, samples, interval, deadline)
    print("2./3. first packet and revocation (a 4th host joins a 3-host lab, then is revoked)", flush=True)
    joins4, revokes4 = bench_join_revoke(
        names[2], 3, int(params["first_packet_rounds"]), interval, deadline, "4-host"
    )
    print("4. join convergence (an 11th host joins a 10-host lab, then is revoked)", flush=True)
    joins10, revokes10 = bench_join_revoke(
        names[3], 10, int(params["join10_rounds"]), interval, deadline, "10-host"
    )
    return Results(t1500, t9000, joins4, revokes4, joins10, revokes10, python_start_s(5))


def json_report(results: Results, rows: list[Row], params: dict[str, Any], elapsed: float) -> dict[str, Any]:
    r = results
    return {
        "benchmark": "bench/mesh.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "parameters": params,
        "elapsed_s": elapsed,
        "throughput": {
            str(t.underlay_mtu): {
                **asdict(t),
                "ztos_median_bps": t.ztos,
                "hand_median_bps": t.hand,
                "ztos_over_hand": t.ztos / t.hand,
                "hand_handshake": summary(t.hand_handshake_s),
                "hand_cold_start": summary(t.hand_cold_start_s),
            }
            for t in (r.t1500, r.t9000)
        },
        "jumbo_over_1500": r.t9000.ztos / r.t1500.ztos,
        "python_start_s": r.python_start_s,
        "first_packet_4_hosts": {
            "spawn_to_first_packet_all": summary(values(r.joins4, "spawn_to_first_packet_all_s")),
            "rounds": [asdict(j) for j in r.joins4],
        },
        "revocation_4_hosts": {
            "cut": summary(values(r.revokes4, "cut_s")),
            "keys_gone_all": summary(values(r.revokes4, "keys_gone_all_s")),
            "api_ack": summary([x.api_ack_s for x in r.revokes4]),
            "rounds": [{**asdict(x), "cut_s": x.cut_s} for x in r.revokes4],
        },
        "join_10_hosts": {
            "controller_enrol_to_all_peers": summary(values(r.joins10, "controller_enrol_to_all_peers_s")),
            "file_to_all_peers": summary(values(r.joins10, "file_to_all_peers_s")),
            "rounds": [asdict(j) for j in r.joins10],
            "revocation_rounds": [{**asdict(x), "cut_s": x.cut_s} for x in r.revokes10],
        },
        "table": [asdict(row) for row in rows],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/mesh.py needs root (network namespaces, wireguard-go)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    quick = bool(args.quick)
    params: dict[str, Any] = {
        "quick": quick,
        "iperf_rounds": 1 if quick else 3,
        "iperf_seconds": 3.0 if quick else 5.0,
        "hand_samples": 3 if quick else 5,
        "first_packet_rounds": 3 if quick else 10,
        "join10_rounds": 2 if quick else 3,
        "reconcile_interval": args.reconcile_interval,
    }
    base = "bm" + secrets.token_hex(2)[:3]
    names = [f"{base}{suffix}" for suffix in "abcd"]
    started = time.monotonic()
    results: Results | None = None
    try:
        results = measure(names, params, Deadline(started + args.time_limit))
    except (BenchError, RuntimeError) as exc:
        print(f"bench/mesh.py failed: {exc}", file=sys.stderr)
    finally:
        left = leftovers(names)
        if left:
            print("LEFT BEHIND: " + "; ".join(left), file=sys.stderr)
    if results is None or left:
        return 1
    r = results
    rows = build_rows(r.t1500, r.t9000, r.joins4, r.revokes4, r.joins10, r.revokes10, r.python_start_s)
    print_table(rows)
    elapsed = time.monotonic() - started
    print(f"\nrun took {elapsed:.0f} s; labs {', '.join(names)} torn down, nothing left behind")
    if args.json_out:
        args.json_out.write_text(json.dumps(json_report(r, rows, params, elapsed), indent=2) + "\n")
        print(f"JSON written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
