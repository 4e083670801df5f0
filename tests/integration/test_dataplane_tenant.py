"""Tenant segments on three "hosts" (namespaces) joined by a switch namespace.

VXLAN runs over plain veths with IPv6 documentation addresses here (standing
in for the WireGuard overlay). Two tenants share the IPv4 subnet
10.20.0.0/24 and even the workload addresses, to prove that nothing crosses:

    h1: tenant a (a1 10.20.0.10), tenant b (b1 10.20.0.10)
    h2: tenant a (a2 10.20.0.11)
    h3: tenant b (b2 10.20.0.11)

Every namespace is named ``zttn<4 hex>-…`` and removed at the end, even when
a test fails (removing a host namespace removes its VXLAN and bridges). Host
devices can repeat across hosts: each host is its own namespace. The tests
share one topology and each leaves it converged for the next.
"""

from __future__ import annotations

import json
import secrets
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from conftest import require_root_tools
from ztos.dataplane import links
from ztos.dataplane.tenant_plan import AddFlood, EnsureGateway, EnsureVxlan, RemoveLeftovers
from ztos.dataplane.tenant_reconcile import TenantRecordingExecutor, reconcile_tenants
from ztos.dataplane.tenant_state import TenantSpec, TenantsSpec, WorkloadSpec

pytestmark = pytest.mark.integration

MTU = 1430  # 1500 - 70: VXLAN over an IPv6 underlay
UNDERLAY = "2001:db8:ffff::{}"
GW_MAC = {"a": "02:00:5e:00:0a:01", "b": "02:00:5e:00:0b:01"}
VNI = {"a": 100, "b": 200}
V6 = {"a": "fd00:a::", "b": "fd00:b::"}
PLACEMENT = {"a1": 1, "a2": 2, "b1": 1, "b2": 3}
HOSTS_OF = {"a": (1, 2), "b": (1, 3)}
WORKLOAD_HOST = {"a1": 10, "a2": 11, "b1": 10, "b2": 11}


def mac_of(workload: str) -> str:
    return f"02:{workload[0] * 2}:00:00:00:{WORKLOAD_HOST[workload]}"


@dataclass
class World:
    prefix: str
    tmp: Path
    specs: dict[int, TenantsSpec] = field(default_factory=dict)

    def host(self, index: int) -> str:
        return f"{self.prefix}-h{index}"

    def tenant_ns(self, host: int, tenant: str) -> str:
        return f"{self.host(host)}-t-{tenant}"

    def workload_ns(self, workload: str) -> str:
        return f"{self.host(PLACEMENT[workload])}-w-{workload}"

    def reconcile(self, host: int, spec: TenantsSpec | None = None) -> list[str]:
        return [str(op) for op in reconcile_tenants(spec or self.specs[host], self.host(host))]


def workload_spec(world: World, name: str) -> WorkloadSpec:
    tenant, last = name[0], WORKLOAD_HOST[name]
    return WorkloadSpec(
        name=name,
        netns=world.workload_ns(name),
        host_port=f"zt-w{name}",
        mac=mac_of(name),
        addresses=(f"10.20.0.{last}/24", f"{V6[tenant]}{last}/64"),
        gateways=("10.20.0.1", f"{V6[tenant]}1"),
    )


def tenant_spec(world: World, host: int, name: str) -> TenantSpec:
    vni = VNI[name]
    return TenantSpec(
        name=name,
        vni=vni,
        vxlan=f"zt-v{vni}",
        bridge=f"zt-b{vni}",
        gateway_port=f"zt-g{vni}",
        vrf_netns=world.tenant_ns(host, name),
        local_vtep=UNDERLAY.format(host),
        mtu=MTU,
        learning=True,
        flood=tuple(UNDERLAY.format(other) for other in HOSTS_OF[name] if other != host),
        gateway_mac=GW_MAC[name],
        gateway_addresses=("10.20.0.1/24", f"{V6[name]}1/64"),
        workloads=tuple(workload_spec(world, w) for w, h in PLACEMENT.items() if h == host and w[0] == name),
    )


def host_spec(world: World, host: int) -> TenantsSpec:
    tenants = tuple(tenant_spec(world, host, t) for t, hosts in HOSTS_OF.items() if host in hosts)
    return TenantsSpec(tenants, device_prefix="zt-", netns_prefix=f"{world.host(host)}-")


def build_underlay(world: World) -> None:
    switch = f"{world.prefix}-sw"
    links.create_netns(switch)
    links.create_bridge("sw0", switch)
    for index in (1, 2, 3):
        host = world.host(index)
        links.create_netns(host)
        links.create_veth("ul0", f"h{index}", netns=host, peer_netns=switch)
        links.set_master(f"h{index}", "sw0", switch)
        links.set_link(f"h{index}", switch, up=True)
        links.set_link("ul0", host, up=True)
        links.add_address("ul0", f"{UNDERLAY.format(index)}/64", host)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_root_tools("ip", "bridge", "ping", "tcpdump")
    built = World(prefix=f"zttn{secrets.token_hex(2)}", tmp=tmp_path_factory.mktemp("tenant"))
    try:
        build_underlay(built)
        for host in (1, 2, 3):
            built.specs[host] = host_spec(built, host)
            built.reconcile(host)
        yield built
    finally:
        for netns in links.list_netns():
            if netns.startswith(built.prefix):
                links.delete_netns(netns)


# --- helpers -------------------------------------------------------------------------


def sh(netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=15, check=check
    )


def pings(netns: str, address: str, *, tries: int = 4, source: str | None = None) -> bool:
    """True as soon as one echo comes back; the first may wait for ARP/ND over the flood list."""
    argv = ["ping", "-n", "-c", "1", "-W", "1", *(["-I", source] if source else []), address]
    return any(sh(netns, *argv, check=False).returncode == 0 for _ in range(tries))


def silent(netns: str, address: str) -> bool:
    """True when nothing answers (two probes, bounded)."""
    return sh(netns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", address, check=False).returncode != 0


class Capture:
    lines: list[str]

    def __init__(self) -> None:
        self.lines = []

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def capture(world: World, netns: str, interface: str, expression: str = "") -> Iterator[Capture]:
    """A bounded tcpdump; ``--immediate-mode`` so SIGINT loses nothing, ``-Z root`` to write here."""
    path = world.tmp / f"{netns}-{interface}-{secrets.token_hex(2)}.pcap"
    argv = ["tcpdump", "-Z", "root", "--immediate-mode", "-U", "-nn", "-i", interface, "-w", str(path)]
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, *argv, *expression.split()], stderr=subprocess.PIPE, text=True
    )
    result = Capture()
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 5.0)
        assert ready and "listening on" in process.stderr.readline(), f"tcpdump on {interface} did not start"
        yield result
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    shown = subprocess.run(
        ["tcpdump", "-nn", "-e", "-r", str(path)], capture_output=True, text=True, timeout=15
    )
    result.lines = shown.stdout.splitlines()


def fdb(netns: str) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = json.loads(sh(netns, "bridge", "-j", "fdb", "show").stdout)
    return entries


def link_names(netns: str) -> set[str]:
    return {link.name for link in links.list_links(netns)}


# --- tests ---------------------------------------------------------------------------


def test_converged_plan_is_empty_and_dry_run_records(world: World) -> None:
    for host in (1, 2, 3):
        assert world.reconcile(host) == [], f"h{host} did not converge"
    recorder = TenantRecordingExecutor()
    fresh = TenantsSpec((tenant_spec(world, 1, "a"),), netns_prefix=f"{world.host(1)}-")
    other = replace(fresh, tenants=(replace(fresh.tenants[0], vxlan="zt-v101"),))
    planned = reconcile_tenants(other, world.host(1), recorder)
    assert recorder.operations == planned
    assert any(isinstance(op, EnsureVxlan) and op.new for op in planned), [str(op) for op in planned]
    assert "zt-v101" not in link_names(world.host(1)), "a recording executor changed the host"


def test_same_tenant_talks_over_ipv4_and_ipv6(world: World) -> None:
    for src, dst in (("a1", "a2"), ("a2", "a1"), ("b1", "b2"), ("b2", "b1")):
        last = WORKLOAD_HOST[dst]
        assert pings(world.workload_ns(src), f"10.20.0.{last}"), f"{src} -> {dst} over IPv4"
        assert pings(world.workload_ns(src), f"{V6[dst[0]]}{last}"), f"{src} -> {dst} over IPv6"


def test_anycast_gateway_answers_on_every_host(world: World) -> None:
    for workload in PLACEMENT:
        ns, tenant = world.workload_ns(workload), workload[0]
        assert pings(ns, "10.20.0.1"), f"{workload}: IPv4 gateway"
        assert pings(ns, f"{V6[tenant]}1"), f"{workload}: IPv6 gateway"
        neighbours = sh(ns, "ip", "neigh", "show", "10.20.0.1").stdout
        assert GW_MAC[tenant] in neighbours, neighbours
    for host, tenant in ((1, "a"), (1, "b"), (2, "a"), (3, "b")):
        # The gateways broadcast (ARP/ND for remote workloads): still no remote may learn them.
        for target in ("10.20.0.10", "10.20.0.11", f"{V6[tenant]}10", f"{V6[tenant]}11"):
            sh(world.tenant_ns(host, tenant), "ping", "-n", "-c", "1", "-W", "0.3", target, check=False)
    for host in (1, 2, 3):
        entries = fdb(world.host(host))
        for tenant in ("a", "b"):
            vxlan = f"zt-v{VNI[tenant]}"
            leaked = [e for e in entries if e.get("mac") == GW_MAC[tenant] and e.get("ifname") == vxlan]
            assert not leaked, f"h{host} learned the {tenant} gateway MAC on {vxlan}: {leaked}"
    h2 = fdb(world.host(2))
    assert any(e.get("mac") == mac_of("a1") and e.get("ifname") == "zt-v100" for e in h2), "control"
    pinned = [e for e in fdb(world.host(1)) if e.get("mac") == GW_MAC["a"] and e.get("ifname") == "zt-g100"]
    assert pinned and pinned[0].get("state") == "static" and "sticky" in str(pinned[0].get("flags"))


def test_nothing_crosses_between_tenants(world: World) -> None:
    a1, b1, b2 = world.workload_ns("a1"), world.workload_ns("b1"), world.workload_ns("b2")
    spoofed = ("fd00:b::99/64", "10.20.0.99/24")
    try:
        with (
            capture(world, world.host(1), "zt-b200") as h1_b,
            capture(world, world.host(3), "zt-b200") as h3_b,
            capture(world, b2, "eth0") as at_b2,
        ):
            for cidr in spoofed:
                sh(a1, "ip", "addr", "add", cidr, "dev", "eth0", "nodad")
            sh(a1, "ip", "neigh", "replace", "fd00:b::11", "lladdr", mac_of("b2"), "dev", "eth0")
            assert silent(a1, "fd00:b::11"), "a1 reached b2's IPv6 address"
            assert silent(a1, "fd00:b::10"), "a1 reached b1's IPv6 address"
            assert silent(a1, "fd00:b::1"), "a1 reached b's gateway"
            assert pings(a1, "10.20.0.11", source="10.20.0.99"), "10.20.0.11 in tenant a is a2"
            assert pings(b1, "10.20.0.11"), "control: b traffic flows during the capture"
    finally:
        for cidr in spoofed:
            sh(a1, "ip", "addr", "del", cidr, "dev", "eth0", check=False)
        sh(a1, "ip", "neigh", "del", "fd00:b::11", "dev", "eth0", check=False)
    a_marks = (mac_of("a1"), mac_of("a2"), GW_MAC["a"], "fd00:b::99", "10.20.0.99", "fd00:a:")
    for seen in (h1_b, h3_b, at_b2):
        assert not [line for line in seen.lines if any(m in line for m in a_marks)], seen.text
    assert mac_of("b1") in h3_b.text and "10.20.0.10 > 10.20.0.11" in at_b2.text, "captures saw b"


def test_underlay_carries_vni_100_for_tenant_a(world: World) -> None:
    with capture(world, world.host(1), "ul0", "udp port 4789") as underlay:
        assert pings(world.workload_ns("a1"), "10.20.0.11")
    # tcpdump prints the outer header, then the inner frame on the next line.
    pairs = [
        f"{outer} | {inner}"
        for outer, inner in zip(underlay.lines, underlay.lines[1:], strict=False)
        if "VXLAN" in outer
    ]
    carrying = [pair for pair in pairs if "vni 100" in pair and "10.20.0.10 > 10.20.0.11: ICMP echo" in pair]
    assert carrying, underlay.text
    assert not [pair for pair in pairs if "vni 200" in pair and "02:aa:" in pair], underlay.text


def test_drift_is_repaired(world: World) -> None:
    h1 = world.host(1)
    sh(h1, "bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "zt-v100", "dst", UNDERLAY.format(2))
    sh(h1, "ip", "link", "del", "zt-g100")
    sh(h1, "ip", "link", "set", "zt-v200", "nomaster")
    stale = "02:00:5e:00:0b:99"
    sh(h1, "bridge", "fdb", "add", stale, "dev", "zt-g200", "master", "static", "sticky")
    ops = reconcile_tenants(world.specs[1], h1)
    assert AddFlood("a", "zt-v100", UNDERLAY.format(2)) in ops, [str(op) for op in ops]
    assert any(isinstance(op, EnsureGateway) and op.tenant.name == "a" and op.new for op in ops)
    assert "~ tenant b: vxlan zt-v200 (fix: master, port flags)" in [str(op) for op in ops]
    assert f"~ tenant b: gateway zt-g200 <-> {world.tenant_ns(1, 'b')}/gw0 (fix: fdb)" in [
        str(op) for op in ops
    ]
    assert world.reconcile(1) == []
    assert not [e for e in fdb(h1) if e.get("mac") == stale], "the stale pin is gone"
    assert pings(world.workload_ns("a1"), "10.20.0.1") and pings(world.workload_ns("a1"), "fd00:a::11")
    assert pings(world.workload_ns("b1"), "fd00:b::11")


def test_detaching_a_tenant_removes_exactly_its_objects(world: World) -> None:
    h1 = world.host(1)
    extra_ns = f"{world.prefix}-x-admin"
    links.create_netns(extra_ns)
    links.create_bridge("zt-admin", h1)
    links.create_bridge("ztb999", h1)
    links.create_bridge("ztwebh1", h1)  # named like the WireGuard link of a lab called "web"
    before = set(links.list_netns())
    only_a = replace(world.specs[1], tenants=tuple(t for t in world.specs[1].tenants if t.name == "a"))
    try:
        ops = reconcile_tenants(only_a, h1)
        assert [str(op) for op in ops] == [
            f"- tenant b (detached): port zt-wb1, gateway zt-g200, vxlan zt-v200, bridge zt-b200, "
            f"netns {world.tenant_ns(1, 'b')}, netns {world.workload_ns('b1')}"
        ]
        assert isinstance(ops[0], RemoveLeftovers)
        assert world.reconcile(1, only_a) == []
        assert not link_names(h1) & {"zt-v200", "zt-b200", "zt-g200", "zt-wb1"}
        assert {"zt-v100", "zt-b100", "zt-g100", "zt-wa1", "zt-admin", "ztb999", "ztwebh1"} <= link_names(h1)
        gone = before - set(links.list_netns())
        assert gone == {world.tenant_ns(1, "b"), world.workload_ns("b1")}
        assert pings(world.workload_ns("a1"), "10.20.0.11") and pings(world.workload_ns("a1"), "fd00:a::11")
    finally:
        links.delete_link("zt-admin", h1)
        links.delete_link("ztb999", h1)
        links.delete_link("ztwebh1", h1)
        links.delete_netns(extra_ns)
    assert world.reconcile(1) != [] and world.reconcile(1) == [], "re-attaching b converges"
    assert wait_pings(world.workload_ns("b1"), "10.20.0.11")


def wait_pings(netns: str, address: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pings(netns, address, tries=1):
            return True
    return False


def test_evpn_mode_leaves_the_fdb_to_frr(world: World) -> None:
    """No FRR here: only the device settings FRR 8.4 needs (IPv4 VTEP, no learning,
    ARP/ND suppression) and that ZTOS keeps its hands off the FDB in that mode."""
    h2 = world.host(2)
    evpn = replace(
        tenant_spec(world, 2, "a"),
        name="c", vni=300, vxlan="zt-v300", bridge="zt-b300", gateway_port="zt-g300",
        vrf_netns=world.tenant_ns(2, "c"), local_vtep="192.0.2.2", learning=False, flood=None,
        gateway_mac="02:00:5e:00:0c:01", workloads=(),
    )  # fmt: skip
    with_c = replace(world.specs[2], tenants=(*world.specs[2].tenants, evpn))
    try:
        assert any("(evpn: no learning, neigh_suppress)" in line for line in world.reconcile(2, with_c))
        sh(h2, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "zt-v300", "dst", "192.0.2.3")
        assert world.reconcile(2, with_c) == [], "an FRR-programmed flood entry is not drift"
        shown = json.loads(sh(h2, "ip", "-j", "-d", "link", "show", "zt-v300").stdout)[0]["linkinfo"]
        assert (shown["info_data"]["local"], shown["info_data"]["learning"]) == ("192.0.2.2", False)
        port = shown["info_slave_data"]
        assert (port["learning"], port["neigh_suppress"], port["isolated"]) == (False, True, True)
    finally:
        world.reconcile(2)
    assert "zt-v300" not in link_names(h2) and world.tenant_ns(2, "c") not in links.list_netns()
