"""Two (or three) hosts in network namespaces, a real wireguard-go mesh between them.

Naming: every namespace, link and WireGuard interface a test creates starts
with a per-test prefix ``ztdp<4 hex>-`` (WireGuard names stay <= 15 characters
and unique per machine, since wireguard-go sockets are shared by all
namespaces). The fixture removes all of it, even when the test fails: it stops
the wireguard-go processes, sweeps sockets with the prefix, deletes the
namespaces (and with them the veths). Traffic stays inside these namespaces.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import require_root_tools
from ztos.dataplane import (
    AddPeer,
    InterfaceSpec,
    PeerSpec,
    RemovePeer,
    WireGuardGo,
    generate_keypair,
    links,
    observe,
    path_mtu,
    reconcile,
    sweep,
    teardown,
    wait_for_handshake,
    wireguard_mtu,
    write_private_key,
)
from ztos.dataplane.wireguard import WgToolDevice, socket_path
from ztos.errors import Conflict

pytestmark = pytest.mark.integration

PORT = 51820
PR_SET_CHILD_SUBREAPER = 36
OVERLAY_ROUTES = ("fd00:5a::/64", "10.90.0.0/16")


@dataclass(frozen=True)
class Host:
    netns: str
    ifname: str
    veth: str
    underlay: str
    overlay6: str
    overlay4: str
    key_path: str
    public_key: str

    def as_peer(self) -> PeerSpec:
        return PeerSpec(
            self.public_key, f"[{self.underlay}]:{PORT}", (f"{self.overlay6}/128", f"{self.overlay4}/32")
        )

    def spec(self, *peers: Host, mtu: int = 1420) -> InterfaceSpec:
        return InterfaceSpec(
            name=self.ifname,
            private_key_path=self.key_path,
            listen_port=PORT,
            mtu=mtu,
            addresses=(f"{self.overlay6}/128", f"{self.overlay4}/32"),
            peers=tuple(p.as_peer() for p in peers),
            routes=OVERLAY_ROUTES,
        )


@dataclass
class Lab:
    prefix: str
    launcher: WireGuardGo
    tmp: Path
    namespaces: list[str]

    def netns(self, suffix: str) -> str:
        name = self.prefix + suffix
        self.namespaces.append(name)
        links.create_netns(name)
        return name

    def host(self, n: int, netns: str, veth: str, underlay: str) -> Host:
        private, public = generate_keypair()
        key_path = self.tmp / f"wg{n}.key"
        write_private_key(key_path, private)
        return Host(
            netns=netns,
            ifname=f"{self.prefix}w{n}",
            veth=veth,
            underlay=underlay,
            overlay6=f"fd00:5a::{n}",
            overlay4=f"10.90.0.{n}",
            key_path=str(key_path),
            public_key=public,
        )

    def pair(self, mtu: int = 1500) -> tuple[Host, Host]:
        """Two hosts on one veth (2001:db8::/64) with the given underlay MTU."""
        a, b = self.netns("a"), self.netns("b")
        links.create_veth(self.prefix + "va", self.prefix + "vb", netns=a, peer_netns=b, mtu=mtu)
        plumb(self.prefix + "va", a, "2001:db8::1/64")
        plumb(self.prefix + "vb", b, "2001:db8::2/64")
        return (
            self.host(1, a, self.prefix + "va", "2001:db8::1"),
            self.host(2, b, self.prefix + "vb", "2001:db8::2"),
        )

    def reconcile(self, host: Host, spec: InterfaceSpec) -> list[str]:
        return [str(op) for op in reconcile(spec, host.netns, launcher=self.launcher)]


def plumb(link: str, netns: str, cidr: str) -> None:
    """Up with an address, and no DAD even for the link-local address.

    A router whose link-local address is still tentative holds forwarded
    packets for ~1 s while it resolves the next hop; nothing to test there.
    """
    links.set_sysctl(f"net.ipv6.conf.{link}.accept_dad", 0, netns)
    links.set_link(link, netns, up=True)
    links.add_address(link, cidr, netns)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_root_tools("ip", "wireguard-go", "wg", "ping", "tcpdump")
    prefix = f"ztdp{secrets.token_hex(2)}-"
    launcher = WireGuardGo()
    lab = Lab(prefix, launcher, tmp_path, [])
    try:
        yield lab
    finally:
        sweep(prefix, launcher)
        for name in lab.namespaces:
            links.delete_netns(name)
        leftovers = [p.name for p in socket_path("x").parent.glob(f"{prefix}*")]
        assert leftovers == [], f"stale wireguard-go sockets: {leftovers}"


def ping(netns: str, address: str, *, size: int = 56, deadline: int = 5) -> bool:
    """One echo reply within ``deadline`` seconds (ping resends every 0.1 s until then)."""
    argv = ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", "1", "-i", "0.1"]
    argv += ["-w", str(deadline), "-s", str(size), address]
    return subprocess.run(argv, capture_output=True, timeout=deadline + 5).returncode == 0


def mesh(lab: Lab, a: Host, b: Host, mtu: int = 1420) -> None:
    lab.reconcile(a, a.spec(b, mtu=mtu))
    lab.reconcile(b, b.spec(a, mtu=mtu))
    assert ping(a.netns, b.overlay6)
    wait_for_handshake(a.ifname, b.public_key, a.netns, timeout=5)


class Capture:
    """tcpdump on a link, used only once it says it is listening (bounded wait)."""

    def __init__(self, netns: str, link: str) -> None:
        argv = ["ip", "netns", "exec", netns, "tcpdump", "-n", "-l", "--immediate-mode", "-i", link]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._wait_listening(timeout=5.0)

    def _wait_listening(self, timeout: float) -> None:
        assert self.proc.stderr is not None
        fd, seen = self.proc.stderr.fileno(), b""
        deadline = time.monotonic() + timeout
        while b"listening on" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            chunk = os.read(fd, 4096) if ready else b""
            if ready and not chunk:
                break  # tcpdump exited
            seen += chunk
        if b"listening on" not in seen:
            self.stop()
            pytest.fail(f"tcpdump did not start listening: {seen.decode(errors='replace')}")

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=5)
        return out.decode(errors="replace").splitlines()


def test_mesh_carries_only_encrypted_udp(lab: Lab) -> None:
    a, b = lab.pair()
    first = lab.reconcile(a, a.spec(b))
    assert first[0] == f"+ interface {a.ifname} (wireguard-go)"
    lab.reconcile(b, b.spec(a))
    capture = Capture(b.netns, b.veth)
    try:
        assert ping(a.netns, b.overlay6), "no overlay IPv6 connectivity"
        assert ping(a.netns, b.overlay4), "no overlay IPv4 connectivity"
    finally:
        packets = capture.stop()
    peer = wait_for_handshake(a.ifname, b.public_key, a.netns, timeout=5)
    assert peer.rx_bytes > 0 and peer.tx_bytes > 0
    assert any(f".{PORT}: UDP" in line for line in packets), packets
    assert not [line for line in packets if "echo" in line.lower()], packets
    ip_packets = [line for line in packets if " IP" in line and "ICMP6" not in line]
    assert all(f".{PORT} > " in line and "UDP" in line for line in ip_packets), ip_packets


def test_drift_is_repaired_and_converged_host_plans_nothing(lab: Lab) -> None:
    a, b = lab.pair()
    mesh(lab, a, b)
    assert lab.reconcile(a, a.spec(b)) == []
    subprocess.run(
        ["ip", "netns", "exec", a.netns, "wg", "set", a.ifname, "peer", b.public_key, "remove"],
        check=True,
    )
    subprocess.run(["ip", "-n", a.netns, "route", "del", OVERLAY_ROUTES[0], "dev", a.ifname], check=True)
    repair = reconcile(a.spec(b), a.netns, launcher=lab.launcher)
    assert isinstance(repair[0], AddPeer)
    assert str(repair[1]) == f"+ route {OVERLAY_ROUTES[0]} dev {a.ifname}"
    assert lab.reconcile(a, a.spec(b)) == []
    assert ping(a.netns, b.overlay6)


def test_peer_removed_from_desired_state_is_removed(lab: Lab) -> None:
    a, b = lab.pair()
    mesh(lab, a, b)
    ops = reconcile(a.spec(), a.netns, launcher=lab.launcher)
    assert ops == [RemovePeer(a.ifname, b.public_key)]
    assert observe(a.ifname, a.netns).peers == ()
    assert not ping(a.netns, b.overlay6, deadline=1)


def test_crashed_wireguard_go_is_restarted(lab: Lab) -> None:
    a, b = lab.pair()
    mesh(lab, a, b)
    pid = int(subprocess.run(["ip", "netns", "pids", a.netns], capture_output=True, text=True).stdout)
    os.kill(pid, signal.SIGKILL)
    lab.launcher.end(pid, wait_first=True, timeout=2)
    assert socket_path(a.ifname).exists(), "a killed wireguard-go leaves its socket behind"
    plan = lab.reconcile(a, a.spec(b))
    assert plan[0] == f"+ interface {a.ifname} (wireguard-go)"
    assert ping(a.netns, b.overlay6)


def test_leftover_tun_without_wireguard_go_is_replaced(lab: Lab) -> None:
    a, b = lab.pair()
    subprocess.run(["ip", "-n", a.netns, "tuntap", "add", "mode", "tun", "name", a.ifname], check=True)
    observed = observe(a.ifname, a.netns)
    assert observed.exists and not observed.controllable
    plan = lab.reconcile(a, a.spec(b))
    assert plan[:2] == [
        f"- interface {a.ifname} (no WireGuard process answers for it)",
        f"+ interface {a.ifname} (wireguard-go)",
    ]
    lab.reconcile(b, b.spec(a))
    assert ping(a.netns, b.overlay6)


def test_interface_name_clash_across_namespaces_is_refused(lab: Lab) -> None:
    a, b = lab.pair()
    lab.reconcile(a, a.spec(b))
    clash = replace(b.spec(a), name=a.ifname)
    with pytest.raises(Conflict, match="unique per host"):
        observe(clash.name, b.netns)
    with pytest.raises(Conflict, match="unique per host"):
        reconcile(clash, b.netns, launcher=lab.launcher)
    assert observe(a.ifname, a.netns).exists, "the first interface must survive the clash"


def test_agent_running_inside_its_namespace(lab: Lab) -> None:
    """``netns=None``: an agent started in the namespace; a restarted one finds its wireguard-go."""
    a, b = lab.pair()
    lab.reconcile(b, b.spec(a))
    script = f"from ztos.dataplane import *\nfor op in reconcile({a.spec(b)!r}):\n    print(op)\n"
    with subreaper():  # the agent's wireguard-go outlives it: become its parent to reap it
        first = agent_in(a.netns, script)
    assert first[0] == f"+ interface {a.ifname} (wireguard-go)"
    assert agent_in(a.netns, script) == [], "a restarted agent must find the running device"
    assert ping(a.netns, b.overlay6)
    assert teardown(a.ifname, a.netns, launcher=lab.launcher)
    assert observe(a.ifname, a.netns).exists is False


@contextmanager
def subreaper() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def agent_in(netns: str, script: str) -> list[str]:
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_wg_tool_device_drives_the_same_state(lab: Lab) -> None:
    """The kernel path's adapter (``wg``) against wireguard-go: same observable results."""
    a, b = lab.pair()
    lab.reconcile(a, a.spec())
    device = WgToolDevice(a.ifname, a.netns)
    device.set_peer(b.as_peer())
    assert observe(a.ifname, a.netns).peer(b.public_key) is not None
    assert [str(op) for op in reconcile(a.spec(b), a.netns, launcher=lab.launcher)] == []
    state = device.state()
    assert state.listen_port == PORT and state.peers[0].endpoint == f"[{b.underlay}]:{PORT}"
    device.remove_peer(b.public_key)
    assert device.state().peers == ()


@pytest.mark.parametrize(("underlay", "expected"), [(9000, 8920), (1500, 1420)])
def test_mtu_follows_the_underlay(lab: Lab, underlay: int, expected: int) -> None:
    a, b = lab.pair(mtu=underlay)
    discovered = path_mtu(b.underlay, a.netns)
    assert discovered == underlay
    local = links.get_link(a.veth, a.netns)
    assert local is not None
    mtu = wireguard_mtu(local.mtu, [discovered], ipv6_underlay=True)
    assert mtu == expected
    mesh(lab, a, b, mtu=mtu)
    assert observe(a.ifname, a.netns).mtu == expected
    assert ping(a.netns, b.overlay6, size=mtu - 48), "a full-size overlay packet did not pass"


def test_path_mtu_finds_a_narrower_hop(lab: Lab) -> None:
    """a --9000-- router --1500-- b: the path MTU is 1500 although a's link says 9000."""
    a, r, b = lab.netns("a"), lab.netns("r"), lab.netns("b")
    p = lab.prefix
    links.create_veth(p + "a0", p + "r0", netns=a, peer_netns=r, mtu=9000)
    links.create_veth(p + "r1", p + "b0", netns=r, peer_netns=b, mtu=1500)
    links.set_sysctl("net.ipv6.conf.all.forwarding", 1, r)
    plumb(p + "a0", a, "2001:db8:1::1/64")
    plumb(p + "r0", r, "2001:db8:1::2/64")
    plumb(p + "r1", r, "2001:db8:2::1/64")
    plumb(p + "b0", b, "2001:db8:2::2/64")
    subprocess.run(["ip", "-n", a, "route", "add", "2001:db8:2::/64", "via", "2001:db8:1::2"], check=True)
    subprocess.run(["ip", "-n", b, "route", "add", "2001:db8:1::/64", "via", "2001:db8:2::1"], check=True)
    assert path_mtu("2001:db8:2::2", a) == 1500
    assert wireguard_mtu(9000, [1500], ipv6_underlay=True) == 1420
