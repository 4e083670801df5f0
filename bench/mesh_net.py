"""Measuring tools for ``bench/mesh.py``: namespaces, an ICMPv6 prober, WireGuard peer lists.

Why not ``ip netns exec … ping``: forking ``ip``/``ping`` costs 5-20 ms a probe
on this 2-core machine, more than some of the intervals being measured. So the
benchmark opens its sockets *inside* the lab's namespaces from its own process
(``setns`` on one thread, create the socket, switch back: a socket stays in
the namespace it was created in) and probes with raw ICMPv6 echo, which the
target's kernel answers (no helper process on the other side). WireGuard peer
lists are read straight from wireguard-go's UAPI socket, which lives in
``/var/run/wireguard/`` whatever the namespace.

Every wait here is bounded by an explicit timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
WG_SOCKET_DIR = Path("/var/run/wireguard")
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
UAPI_TIMEOUT = 2.0

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the calling *thread* inside ``netns`` for the block, then switch back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def in_netns(netns: str, make: Callable[[], T]) -> T:
    """``make()`` called inside ``netns`` (sockets it creates stay there)."""
    with entered(netns):
        return make()


def enter_for_good(netns: str) -> None:
    """Move the calling thread into ``netns`` for the rest of its life (executor initializer)."""
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def netns_run(netns: str, *argv: str, timeout: float = 30.0, check: bool = True) -> str:
    """Run ``argv`` in ``netns`` to completion; its stdout (``RuntimeError`` on failure)."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} in {netns}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def link_mtu(netns: str, ifname: str) -> int:
    """The MTU of ``ifname`` as ``ip link show`` reports it."""
    out = netns_run(netns, "ip", "-o", "link", "show", "dev", ifname)
    fields = out.split()
    return int(fields[fields.index("mtu") + 1])


# --- WireGuard peers through the UAPI socket ---------------------------------------------------


def uapi_peers(ifname: str) -> set[str] | None:
    """Hex public keys of ``ifname``'s peers, or None when its wireguard-go does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(UAPI_TIMEOUT)
            sock.connect(str(WG_SOCKET_DIR / f"{ifname}.sock"))
            sock.sendall(b"get=1\n\n")
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return {
        line.split("=", 1)[1]
        for line in data.decode(errors="replace").splitlines()
        if line.startswith("public_key=")
    }


# --- ICMPv6 echo from inside a namespace ---------------------------------------------------------


class Pinger:
    """Raw ICMPv6 echo from one namespace, matching replies by identifier and source."""

    _next_ident = int.from_bytes(os.urandom(2), "big")
    _ident_lock = threading.Lock()

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.sock = in_netns(
            netns, lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        )
        self.sock.setblocking(False)
        with Pinger._ident_lock:
            Pinger._next_ident = (Pinger._next_ident + 1) & 0xFFFF
            self.ident = Pinger._next_ident
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Pinger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, target: str) -> None:
        """One echo request; an unroutable target (no route yet) is simply not sent."""
        self.seq = (self.seq + 1) & 0xFFFF
        packet = struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, self.ident, self.seq) + b"ztos-bench"
        # ENETUNREACH/EHOSTUNREACH before the interface is there: keep probing
        with contextlib.suppress(OSError):
            self.sock.sendto(packet, (target, 0))

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
                if len(data) >= 8:
                    kind, _code, _sum, ident, _seq = struct.unpack("!BBHHH", data[:8])
                    if kind == ICMP6_ECHO_REPLY and ident == self.ident:
                        replies.append((canonical(addr[0]), now))
            if replies:
                return replies

    def first_replies(
        self, targets: list[str], timeout: float, interval: float = 0.02
    ) -> dict[str, float | None]:
        """Probe every ``interval`` until each target has answered once; the time of each first reply."""
        wanted = {canonical(t): t for t in targets}
        first: dict[str, float | None] = dict.fromkeys(wanted)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(v is None for v in first.values()):
            for key, target in wanted.items():
                if first[key] is None:
                    self.send(target)
            tick_end = min(deadline, time.monotonic() + interval)
            while time.monotonic() < tick_end and any(v is None for v in first.values()):
                for source, at in self.receive(tick_end):
                    if source in first and first[source] is None:
                        first[source] = at
        return {wanted[k]: v for k, v in first.items()}

    def monitor(
        self, targets: list[str], stop: threading.Event, interval: float = 0.01
    ) -> dict[str, list[float]]:
        """Probe every ``interval`` until ``stop`` is set; every reply time per target."""
        wanted = {canonical(t): t for t in targets}
        seen: dict[str, list[float]] = {k: [] for k in wanted}
        while not stop.is_set():
            for target in wanted.values():
                self.send(target)
            tick_end = time.monotonic() + interval
            while time.monotonic() < tick_end:
                for source, at in self.receive(tick_end):
                    if source in seen:
                        seen[source].append(at)
        return {wanted[k]: v for k, v in seen.items()}


def canonical(address: str) -> str:
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> float | None:
    """Poll ``condition`` until true; the monotonic time it became true, None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
