"""The baseline of ``bench/mesh.py``: a wireguard-go pair configured by hand.

Between the same two lab namespaces as the ZTOS interfaces, at the same MTU,
this builds what an engineer would type: ``wireguard-go -f IF``, ``wg set``
(key, port, peer, endpoint, allowed IPs) and ``ip`` (address, MTU, up). It
uses its own interface names (``LABhandN``, not matched by the lab's cleanup
regex, so it removes them itself), its own keys, its own UDP port and a
separate ULA /64 (``fd00:beef::/64``). No ZTOS code is on this path except key
generation.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mesh_net import WG_SOCKET_DIR, Pinger, netns_run, wait_until
from ztos.dataplane.keys import generate_keypair, write_private_key

HAND_PREFIX = "fd00:beef::"
HAND_PORT = 51999
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


@dataclass
class HandEnd:
    """One side: namespace, interface, keys, addresses."""

    netns: str
    ifname: str
    underlay: str
    overlay: str
    private_b64: str
    public_b64: str
    key_file: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class HandPair:
    """Two hand-configured wireguard-go interfaces, ``a`` and ``b``, peered with each other."""

    a: HandEnd
    b: HandEnd
    mtu: int
    workdir: Path
    _tmp: tempfile.TemporaryDirectory[str] = field(repr=False)

    @classmethod
    def create(cls, lab: str, netns: tuple[str, str], underlay: tuple[str, str], mtu: int) -> HandPair:
        tmp = tempfile.TemporaryDirectory(prefix=f"ztos-bench-{lab}-")
        workdir = Path(tmp.name)
        ends = []
        for index in (1, 2):
            private, public = generate_keypair()
            key_file = workdir / f"hand{index}.key"
            write_private_key(key_file, private)
            ends.append(
                HandEnd(
                    netns=netns[index - 1],
                    ifname=f"{lab}hand{index}",
                    underlay=underlay[index - 1],
                    overlay=f"{HAND_PREFIX}{index}",
                    private_b64=private,
                    public_b64=public,
                    key_file=key_file,
                )
            )
        return cls(ends[0], ends[1], mtu, workdir, tmp)

    # -- by hand ---------------------------------------------------------------------------

    def start(self, end: HandEnd) -> None:
        """``wireguard-go -f``, then key, port, address, MTU, up (no peer yet)."""
        log = (self.workdir / f"{end.ifname}.log").open("ab")
        with log:
            end.process = subprocess.Popen(
                ["ip", "netns", "exec", end.netns, "wireguard-go", "-f", end.ifname],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        sock = WG_SOCKET_DIR / f"{end.ifname}.sock"
        if wait_until(sock.exists, START_TIMEOUT, 0.002) is None:
            raise RuntimeError(f"wireguard-go {end.ifname} did not create {sock} within {START_TIMEOUT}s")
        netns_run(
            end.netns,
            "wg",
            "set",
            end.ifname,
            "private-key",
            str(end.key_file),
            "listen-port",
            str(HAND_PORT),
        )
        netns_run(end.netns, "ip", "-6", "address", "add", f"{end.overlay}/64", "dev", end.ifname, "nodad")
        netns_run(end.netns, "ip", "link", "set", "dev", end.ifname, "mtu", str(self.mtu), "up")

    def peer(self, end: HandEnd, other: HandEnd) -> None:
        netns_run(
            end.netns,
            "wg",
            "set",
            end.ifname,
            "peer",
            other.public_b64,
            "endpoint",
            f"[{other.underlay}]:{HAND_PORT}",
            "allowed-ips",
            f"{other.overlay}/128",
        )

    def unpeer(self, end: HandEnd, other: HandEnd) -> None:
        netns_run(end.netns, "wg", "set", end.ifname, "peer", other.public_b64, "remove")

    def stop(self, end: HandEnd) -> None:
        """Delete the tun (wireguard-go exits), reap it, remove its socket; idempotent."""
        netns_run(end.netns, "ip", "link", "del", "dev", end.ifname, check=False)
        if end.process is not None:
            try:
                end.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                end.process.kill()
                end.process.wait(timeout=STOP_TIMEOUT)
            end.process = None
        (WG_SOCKET_DIR / f"{end.ifname}.sock").unlink(missing_ok=True)

    def up(self) -> None:
        self.start(self.a)
        self.start(self.b)
        self.peer(self.a, self.b)
        self.peer(self.b, self.a)

    def close(self) -> None:
        for end in (self.a, self.b):
            with contextlib.suppress(Exception):
                self.stop(end)
        self._tmp.cleanup()

    # -- baselines -----------------------------------------------------------------------------

    def handshake_sample(self, timeout: float = 10.0) -> float:
        """Peers removed on both sides, then ``wg set … peer`` on both and ping: seconds to first reply."""
        self.unpeer(self.a, self.b)
        self.unpeer(self.b, self.a)
        with Pinger(self.a.netns) as pinger:
            start = time.monotonic()
            self.peer(self.a, self.b)
            self.peer(self.b, self.a)
            reply = pinger.first_replies([self.b.overlay], timeout)[self.b.overlay]
        if reply is None:
            raise RuntimeError(f"hand pair: no reply from {self.b.overlay} within {timeout}s")
        return reply - start

    def cold_start_sample(self, timeout: float = 10.0) -> float:
        """Side ``b`` from nothing (``a`` configured and waiting): wireguard-go start to first reply."""
        self.stop(self.b)
        self.unpeer(self.a, self.b)
        self.peer(self.a, self.b)  # a fresh peer entry: no session left from before
        with Pinger(self.b.netns) as pinger:
            start = time.monotonic()
            self.start(self.b)
            self.peer(self.b, self.a)
            reply = pinger.first_replies([self.a.overlay], timeout)[self.a.overlay]
        if reply is None:
            raise RuntimeError(f"hand pair: no reply from {self.a.overlay} within {timeout}s")
        return reply - start
