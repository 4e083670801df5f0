"""Tenants end to end (issue: tenants over the mesh) on a 3-host lab with real
wireguard-go, VXLAN, bridges, tenant namespaces and, for EVPN, real FRR.

Tenants ``a`` and ``b`` share the IPv4 subnet 10.20.0.0/24; workloads a1@h1,
a2@h2, b1@h1, b2@h3 get overlapping addresses (a1 and b1 are both .10, a2
and b2 both .11). Tests run in order on one lab: isolation (embedded mode),
captures, detach, then EVPN (which ends by revoking a host).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require_root_tools
from ztos.lab import checks, commands, runner
from ztos.lab.topology import LabHost, LabTopology
from ztos.routing.frr import RUN_ROOT as FRR_RUN_ROOT
from ztos.routing.spec import CONFIG_ROOT

WORKLOADS = {"a1": ("a", "h1"), "a2": ("a", "h2"), "b1": ("b", "h1"), "b2": ("b", "h3")}


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "tcpdump", "ping", "vtysh", "/usr/lib/frr/bgpd")
    topology = LabTopology("t" + secrets.token_hex(2), 3)
    try:
        runner.up(topology, reconcile_interval=2.0)
        checks.wait_converged(topology.name, timeout=60)
        for tenant in ("a", "b"):
            admin(topology, "tenant", "create", tenant, "--ipv4", "10.20.0.0/24")
            for host in topology.hosts:
                admin(topology, "tenant", "attach", tenant, "--node", host.name)
        for name, (tenant, node) in WORKLOADS.items():
            admin(topology, "workload", "add", tenant, "--node", node, "--name", name)
        wait_for(lambda: all(ping(topology, w, "10.20.0.1") for w in WORKLOADS), 30, "every workload up")
        yield topology
    finally:
        runner.down(topology.name)


def admin(lab: LabTopology, *args: str) -> Any:
    return runner.run_admin(lab.name, *args)


def workload_ns(lab: LabTopology, name: str) -> str:
    return f"{lab.host_named(WORKLOADS[name][1]).netns}-w-{name}"


def host_of(lab: LabTopology, name: str) -> LabHost:
    return lab.host_named(WORKLOADS[name][1])


def in_ns(netns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def ping(lab: LabTopology, workload: str, address: str, count: int = 1) -> bool:
    return in_ns(workload_ns(lab, workload), "ping", "-c", str(count), "-W", "1", address).returncode == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} not within {timeout}s")


def workload(lab: LabTopology, name: str) -> dict[str, Any]:
    listed = json.loads(admin(lab, "workload", "list", "--json"))
    return next(w for w in listed if w["name"] == name)


class Capture:
    """tcpdump in a namespace; ``--immediate-mode`` so stopping it loses nothing."""

    def __init__(self, netns: str, interface: str, path: Path, extra: tuple[str, ...] = ()) -> None:
        argv = [
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-i",
            interface,
            "-nn",
            "-U",
            "-w",
            str(path),
            *extra,
        ]
        self.path = path
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, *argv], stderr=subprocess.PIPE, text=True
        )
        assert self.process.stderr is not None
        assert "listening on" in self.process.stderr.readline(), "tcpdump did not start"

    def lines(self, *decode: str) -> list[str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        read = subprocess.run(
            ["tcpdump", "-nn", "-e", *decode, "-r", str(self.path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return read.stdout.splitlines()


def test_tenants_with_the_same_subnet_reach_only_their_own_workloads(
    lab: LabTopology, tmp_path: Path
) -> None:
    a2, b2 = workload(lab, "a2"), workload(lab, "b2")
    assert a2["ipv4"] == b2["ipv4"] == "10.20.0.11/24", "overlapping addresses across tenants"
    for source, target in (("a1", a2), ("b1", b2)):
        for family in ("ipv4", "ipv6"):
            assert ping(lab, source, target[family].split("/")[0], count=2), (
                f"{source} -> {target['name']} {family}"
            )

    capture = Capture(workload_ns(lab, "b2"), "eth0", tmp_path / "b2.pcap")
    a1 = workload(lab, "a1")
    a1_ns = workload_ns(lab, "a1")
    # a1 spoofs tenant b: takes b1's IPv6 address and tries b2, then floods ARP for .11
    assert (
        in_ns(
            a1_ns, "ip", "-6", "addr", "add", workload(lab, "b1")["ipv6"], "dev", "eth0", "nodad"
        ).returncode
        == 0
    )
    assert not ping(lab, "a1", b2["ipv6"].split("/")[0], count=2)
    in_ns(a1_ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.20.0.11")
    lines = capture.lines()
    assert not [line for line in lines if a1["mac"] in line or a1["ipv6"].split("/")[0] in line], lines
    # and the other way: b2 takes a1's IPv4 and IPv6 addresses and tries a2
    b2_ns = workload_ns(lab, "b2")
    in_ns(b2_ns, "ip", "-6", "addr", "add", a1["ipv6"], "dev", "eth0", "nodad")
    assert not ping(lab, "b2", a2["ipv6"].split("/")[0], count=2)
    in_ns(b2_ns, "ip", "-6", "addr", "del", a1["ipv6"], "dev", "eth0")
    in_ns(a1_ns, "ip", "-6", "addr", "del", workload(lab, "b1")["ipv6"], "dev", "eth0")


def test_underlay_carries_only_wireguard_and_wireguard_carries_vxlan(
    lab: LabTopology, tmp_path: Path
) -> None:
    h1 = host_of(lab, "a1")
    underlay = Capture(lab.underlay_netns, h1.bridge_port, tmp_path / "underlay.pcap")
    tunnel = Capture(h1.netns, h1.wg_interface, tmp_path / "wg.pcap")
    assert ping(lab, "a1", workload(lab, "a2")["ipv4"].split("/")[0], count=3)
    wire = underlay.lines()
    inner = tunnel.lines("-T", "vxlan")
    assert wire and all(
        ".51820 " in line or "ARP" in line or ("ICMP6" in line and "neighbor" in line) or ".8443" in line
        for line in wire
    ), wire
    assert not [line for line in wire if "echo request" in line], wire
    assert [line for line in inner if "VXLAN" in line and "vni 100" in line], inner


def test_detaching_a_tenant_removes_only_its_objects(lab: LabTopology) -> None:
    h1 = host_of(lab, "b1")
    prefix = f"{h1.netns}-"
    before_links = in_ns(h1.netns, "ip", "-o", "link").stdout
    assert "zt-v101" in before_links and "zt-b101" in before_links and "zt-g101" in before_links
    admin(lab, "tenant", "detach", "b", "--node", "h1")

    def gone() -> bool:
        links = in_ns(h1.netns, "ip", "-o", "link").stdout
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return not any(d in links for d in ("zt-v101", "zt-b101", "zt-g101")) and (
            f"{prefix}t-b " not in namespaces + " " and f"{prefix}w-b1" not in namespaces
        )

    wait_for(gone, 10, "tenant b's VXLAN, bridge, gateway and namespaces gone from h1")
    links = in_ns(h1.netns, "ip", "-o", "link").stdout
    assert all(d in links for d in ("zt-v100", "zt-b100", "zt-g100", h1.wg_interface, "eth0"))
    assert ping(lab, "a1", workload(lab, "a2")["ipv4"].split("/")[0], count=2), "tenant a unharmed"
    assert ping(lab, "b2", "10.20.0.1"), "tenant b still served on h3"


def vtysh(host: LabHost, command: str) -> Any:
    result = in_ns(host.netns, "vtysh", "--vty_socket", f"/var/run/frr/{host.netns}", "-c", command)
    return json.loads(result.stdout or "{}") if result.returncode == 0 else {}


def type3_vteps(host: LabHost) -> set[str]:
    routes = vtysh(host, "show bgp l2vpn evpn route type multicast json")
    return {
        path["ip"]
        for rd, body in routes.items()
        if isinstance(body, dict)
        for prefix, entry in body.items()
        if isinstance(entry, dict) and "paths" in entry
        for group in entry["paths"]
        for path in group
        if path.get("pathFrom") == "internal"
    }


def established(host: LabHost) -> int:
    peers = vtysh(host, "show bgp summary json").get("l2VpnEvpn", {}).get("peers", {})
    return sum(peer.get("state") == "Established" for peer in peers.values())


def test_evpn_sessions_routes_fdb_and_withdrawal(lab: LabTopology) -> None:
    admin(lab, "network", "configure", "--bgp", "--as", "65000")
    hosts = lab.hosts
    vteps = {h.name: json.loads(h.enrolment.read_text())["node"]["overlay_ipv4"] for h in hosts}
    wait_for(lambda: all(established(h) == 2 for h in hosts), 30, "every BGP session Established")
    wait_for(
        lambda: all(type3_vteps(h) == {vteps[o.name] for o in hosts if o != h} for h in hosts),
        20,
        "every host seeing the others' type-3 routes",
    )
    a2 = workload(lab, "a2")
    h1 = host_of(lab, "a1")

    def type2_in_fdb() -> bool:
        fdb = json.loads(in_ns(h1.netns, "bridge", "-j", "fdb", "show", "dev", "zt-v100").stdout or "[]")
        return any(e["mac"] == a2["mac"] and "extern_learn" in e.get("flags", []) for e in fdb)

    ping(lab, "a2", "10.20.0.1")  # the workload speaks, its bridge learns it, FRR advertises it
    wait_for(type2_in_fdb, 20, "a2's MAC in h1's VXLAN FDB from a type-2 route")
    assert ping(lab, "a1", a2["ipv4"].split("/")[0], count=2)
    h3 = lab.host_named("h3")
    admin(lab, "node", "revoke", "h3")
    wait_for(lambda: vteps["h3"] not in type3_vteps(h1), 20, "h3's routes withdrawn from h1")
    status = json.loads(admin(lab, "network", "status", "--json"))
    assert status["bgp"]["asn"] == 65000 and status["bgp_sessions"], status
    wait_for(lambda: established(h1) == 1, 20, "h1 left with one session (h2) after h3's revocation")
    assert h3.name not in json.dumps(vtysh(h1, "show bgp summary json"))


def test_routing_that_cannot_start_leaves_every_other_area_reconciled(lab: LabTopology) -> None:
    """Issue 12: h2's FRR is stopped and its socket directory taken by a file, so the
    routing area fails every pass; a workload added to h2 still comes up (the tenants
    area ran), and ``agent plan`` says routing is not done while the rest converged."""
    h2 = lab.host_named("h2")
    sockets = FRR_RUN_ROOT / h2.netns
    for daemon in ("bgpd", "zebra"):
        pid_file = CONFIG_ROOT / h2.netns / f"{daemon}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    shutil.rmtree(sockets, ignore_errors=True)
    sockets.write_text("in the way\n")
    plan = commands.agent_plan_argv(h2)
    others = [f"{area}: converged" for area in ("wireguard", "underlay", "tenants", "gateways", "policy")]
    try:
        admin(lab, "workload", "add", "a", "--node", "h2", "--name", "a3")
        a3 = f"{h2.netns}-w-a3"
        up = lambda: in_ns(a3, "ping", "-c", "1", "-W", "1", "10.20.0.1").returncode == 0  # noqa: E731
        wait_for(up, 30, "a3 up on h2 while h2's FRR cannot start")

        def routing_alone_pending() -> bool:
            lines = in_ns(h2.netns, *plan).stdout.splitlines()
            return lines[:5] == others and not lines[5].endswith("converged")

        wait_for(routing_alone_pending, 20, "every area but routing converged on h2")
    finally:
        sockets.unlink(missing_ok=True)
