"""Measuring tools for ``bench/tenants.py``: ICMPv4 echo, FDB reads and iperf3 inside lab namespaces.

Same approach as ``mesh_net`` (whose namespace helpers this reuses): sockets
are opened *inside* a workload's or host's namespace from this process
(``setns`` on one thread; a socket stays in the namespace it was created in),
so a probe costs no fork. Workloads are probed over IPv4, as the brief asks:
raw ICMPv4 echo, answered by the target workload's kernel, after a real ARP
exchange through the tenant's VXLAN. FDB entries are read with one netlink
dump per poll from a thread that lives in the host's namespace.

Every wait here is bounded by an explicit timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from mesh_net import NETNS_DIR, enter_for_good, in_netns, netns_run, wait_until
from ztos.lab import procs

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
IPERF_PORT = 5201


class ProbeError(Exception):
    """A measuring tool could not do its job (not a slow result: a broken probe)."""


# --- ICMPv4 echo from inside a namespace ------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Pinger4:
    """Raw ICMPv4 echo from one namespace, replies matched by identifier and source.

    The kernel does not fill in ICMPv4 checksums on raw sockets (it does for
    ICMPv6), and what a raw IPv4 socket reads starts with the IP header.
    """

    _next_ident = int.from_bytes(os.urandom(2), "big")
    _ident_lock = threading.Lock()

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.sock = in_netns(
            netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        )
        self.sock.setblocking(False)
        with Pinger4._ident_lock:
            Pinger4._next_ident = (Pinger4._next_ident + 1) & 0xFFFF
            self.ident = Pinger4._next_ident
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Pinger4:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, target: str) -> None:
        """One echo request; a target the kernel refuses for now (no neighbour yet) is not sent."""
        self.seq = (self.seq + 1) & 0xFFFF
        payload = b"ztos-bench-tenants"
        header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, self.ident, self.seq)
        packet = struct.pack(
            "!BBHHH", ICMP_ECHO_REQUEST, 0, _checksum(header + payload), self.ident, self.seq
        )
        with contextlib.suppress(OSError):
            self.sock.sendto(packet + payload, (target, 0))

    def receive(self, until: float) -> list[tuple[str, float]]:
        """Echo replies to this pinger received before ``until`` (monotonic): (source, time)."""
        replies: list[tuple[str, float]] = []
        while True:
            wait = until - time.monotonic()
            if wait <= 0:
                return replies
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return replies
            while True:
                try:
                    data, addr = self.sock.recvfrom(2048)
                except BlockingIOError:
                    break
                now = time.monotonic()
                ihl = (data[0] & 0x0F) * 4 if data else 0
                if len(data) >= ihl + 8:
                    kind, _code, _sum, ident, _seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                    if kind == ICMP_ECHO_REPLY and ident == self.ident:
                        replies.append((addr[0], now))
            if replies:
                return replies

    def first_reply(self, target: str, timeout: float, interval: float = 0.01) -> float | None:
        """Probe ``target`` every ``interval`` until it answers; the time of the first reply."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(target)
            tick_end = min(deadline, time.monotonic() + interval)
            while time.monotonic() < tick_end:
                for source, at in self.receive(tick_end):
                    if source == target:
                        return at
        return None


def first_replies_from(
    sources: dict[str, str], target: str, timeout: float, interval: float = 0.01
) -> dict[str, float | None]:
    """From each source namespace (by label) at once: when ``target`` first answered it."""
    pingers = {label: Pinger4(netns) for label, netns in sources.items()}
    try:
        with ThreadPoolExecutor(len(pingers)) as pool:
            futures = {
                label: pool.submit(pinger.first_reply, target, timeout, interval)
                for label, pinger in pingers.items()
            }
            return {label: future.result(timeout=timeout + 5) for label, future in futures.items()}
    finally:
        for pinger in pingers.values():
            pinger.close()


# --- bridge FDB of a host, read from a thread living in its namespace --------------------------------


class FdbReader:
    """Reads one host's FDB by netlink from a dedicated thread inside its namespace."""

    def __init__(self, netns: str) -> None:
        self.pool = ThreadPoolExecutor(1, initializer=enter_for_good, initargs=(netns,))
        self.ipr: Any = self.pool.submit(IPRoute).result(timeout=10)

    def macs_on(self, ifname: str) -> set[str]:
        """MAC addresses with an FDB entry on ``ifname`` (learned, static or from EVPN)."""
        return set(self.pool.submit(self._macs_on, ifname).result(timeout=10))

    def _macs_on(self, ifname: str) -> set[str]:
        indexes = self.ipr.link_lookup(ifname=ifname)
        if not indexes:
            return set()
        return {
            str(row.get("NDA_LLADDR")).lower()
            for row in self.ipr.fdb("dump")
            if row["ifindex"] == indexes[0] and row.get("NDA_LLADDR")
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.submit(self.ipr.close).result(timeout=10)
        self.pool.shutdown()


def wait_for_mac(
    reader: FdbReader, ifname: str, mac: str, timeout: float, interval: float = 0.01
) -> float | None:
    """Poll until ``mac`` has an FDB entry on ``ifname``; the monotonic time it was seen."""
    return wait_until(lambda: mac.lower() in reader.macs_on(ifname), timeout, interval)


def wait_for_netns(name: str, timeout: float, interval: float = 0.002) -> float | None:
    """Poll ``/run/netns/NAME`` (where ``ip netns`` and pyroute2 bind namespaces)."""
    path = NETNS_DIR / name
    return wait_until(path.exists, timeout, interval)


# --- one-off commands (outside any timed window) ------------------------------------------------------


def fast_arp(netns: str, ifname: str = "eth0", retrans_ms: int = 10) -> None:
    """Make the probing side retry ARP every ``retrans_ms`` instead of every second.

    Without this a probe sent before the new workload exists leaves the
    neighbour entry INCOMPLETE and the kernel asks again only once a second, so
    the measurement would be rounded up to the prober's ARP timer.
    """
    netns_run(netns, "sysctl", "-q", "-w", f"net.ipv4.neigh.{ifname}.retrans_time_ms={retrans_ms}")


def flush_neighbours(netns: str, ifname: str = "eth0") -> None:
    netns_run(netns, "ip", "-4", "neigh", "flush", "dev", ifname)


def iperf(server_netns: str, client_netns: str, address: str, seconds: float) -> float:
    """iperf3 TCP, one stream, client -> server bound to ``address``; bits/s received."""
    argv = ["iperf3", "-s", "-1", "-B", address, "-p", str(IPERF_PORT)]
    process = subprocess.Popen(
        ["ip", "netns", "exec", server_netns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if wait_until(lambda: procs.listening(process.pid, IPERF_PORT), 5.0, 0.01) is None:
            raise ProbeError(f"iperf3 server in {server_netns} did not listen within 5s")
        out = netns_run(
            client_netns,
            *["iperf3", "-c", address, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-P", "1", "-J"],
            timeout=seconds + 30,
            check=False,
        )
        try:
            return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProbeError(f"iperf3 {client_netns} -> {address} failed: {out[-300:]}") from exc
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def frr_leftovers(netns_prefix: str) -> list[str]:
    """FRR daemons (``-N INSTANCE``, instances named after lab host namespaces) still running."""
    found = []
    for pid in procs.pids_matching(
        lambda argv: Path(argv[0]).name in {"bgpd", "zebra", "watchfrr", "staticd"}
    ):
        argv = procs.cmdline(pid)
        if any(arg.startswith(netns_prefix) for arg in argv[1:]):
            found.append(f"{Path(argv[0]).name} pid {pid} {' '.join(argv)}")
    return found
