"""Tenants are reachable only through WireGuard, policy or not (issue 10, items 1 and 11).

A 2-host lab with tenants ``a`` and ``b`` and *no* policy: an attacker in the
unenrolled underlay namespace sends raw VXLAN (the tenant's VNI, frames with
ARP, ICMP and ICMPv6 for workload a1) to h1's underlay IPv6 and IPv4
addresses and to its overlay addresses routed over the underlay. Nothing may
reach a1 (tcpdump in its namespace), h1's VXLAN FDB must not learn the
attacker, and nothing of a tenant leaves h1 in clear (capture on the
underlay). Then the same in EVPN mode (IPv4 VTEPs, FRR), where BGP from the
underlay must get no answer either, without and with a policy, and last
with the policy back in flood mode. A host that forwards and masquerades
into WireGuard must not relay the underlay's VXLAN to the other host's overlay
addresses either (without the forward chain, the other host would take it
as a peer's). The gateway test: a workload's TCP
connect to its gateway gets no answer, while ping of the gateway still works.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_tenants import Capture

from conftest import require_root_tools
from ztos.lab import checks, runner
from ztos.lab.topology import LabHost, LabTopology

WORKLOADS = {"a1": ("a", "h1"), "a2": ("a", "h2"), "b1": ("b", "h1")}
FAKE_IPV4, FAKE_IPV6 = "10.20.0.99", "fe80::5a68:3599"  # the attacker's inner source addresses
POLICY = """\
version: 1
rules:
  - name: a-within
    from: "*"
    to: {tenants: [a]}
    ports: [icmp]
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "tcpdump", "ping", "nft", "bridge")
    topology = LabTopology("zh5" + secrets.token_hex(1), 2)
    try:
        runner.up(topology, reconcile_interval=2.0)
        checks.wait_converged(topology.name, timeout=60)
        for tenant in ("a", "b"):
            admin(topology, "tenant", "create", tenant, "--ipv4", "10.20.0.0/24")
            for host in topology.hosts:
                admin(topology, "tenant", "attach", tenant, "--node", host.name)
        for name, (tenant, node) in WORKLOADS.items():
            admin(topology, "workload", "add", tenant, "--node", node, "--name", name)
        wait_for(lambda: all(ping(topology, w, "10.20.0.1") for w in WORKLOADS), 60, "every workload up")
        yield topology
    finally:
        runner.down(topology.name)


def admin(lab: LabTopology, *args: str) -> str:
    return runner.run_admin(lab.name, *args)


def in_ns(netns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def workload_ns(lab: LabTopology, name: str) -> str:
    return f"{lab.host_named(WORKLOADS[name][1]).netns}-w-{name}"


def ping(lab: LabTopology, name: str, address: str) -> bool:
    return in_ns(workload_ns(lab, name), "ping", "-c", "1", "-W", "1", address).returncode == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout}s")


def workload(lab: LabTopology, name: str) -> dict[str, Any]:
    listed = json.loads(admin(lab, "workload", "list", "--json"))
    return next(w for w in listed if w["name"] == name)


def vxlans(host: LabHost) -> dict[str, int]:
    """``{vxlan device: VNI}`` on a host."""
    shown = json.loads(in_ns(host.netns, "ip", "-d", "-j", "link", "show", "type", "vxlan").stdout or "[]")
    return {link["ifname"]: link["linkinfo"]["info_data"]["id"] for link in shown}


def overlay_addresses(host: LabHost) -> list[str]:
    shown = json.loads(in_ns(host.netns, "ip", "-j", "addr", "show", "dev", host.wg_interface).stdout)
    return [a["local"] for link in shown for a in link["addr_info"] if a.get("scope") != "link"]


def underlay_addresses(lab: LabTopology) -> set[str]:
    shown = json.loads(in_ns(lab.underlay_netns, "ip", "-j", "addr", "show").stdout)
    return {a["local"] for link in shown for a in link["addr_info"]}


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return int(~(total + (total >> 16)) & 0xFFFF)


def frames(victim: dict[str, Any], forged_mac: str) -> list[bytes]:
    """ARP, ICMP echo and ICMPv6 echo for ``victim``, from ``forged_mac`` (another workload's)."""
    src, dst = mac_bytes(forged_mac), mac_bytes(victim["mac"])
    ipv4 = socket.inet_aton(victim["ipv4"].split("/")[0])
    fake4 = socket.inet_aton(FAKE_IPV4)
    arp = b"\xff" * 6 + src + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += src + fake4 + b"\0" * 6 + ipv4
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x5A68, 1) + b"zh5"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, fake4, ipv4)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    ip4 = dst + src + b"\x08\x00" + header + icmp
    ipv6 = socket.inet_pton(socket.AF_INET6, victim["ipv6"].split("/")[0])
    echo6 = struct.pack("!BBHHH", 128, 0, 0, 0x5A68, 1) + b"zh5"
    fake6 = socket.inet_pton(socket.AF_INET6, FAKE_IPV6)
    header6 = struct.pack("!IHBB16s16s", 6 << 28, len(echo6), 58, 64, fake6, ipv6)
    ip6 = dst + src + b"\x86\xdd" + header6 + echo6
    return [arp, ip4, ip6]


INJECT = (
    "import socket, sys\n"
    "frames = [bytes.fromhex(f) for f in sys.argv[3:]]\n"
    "address, vni = sys.argv[1], int(sys.argv[2])\n"
    "family = socket.AF_INET6 if ':' in address else socket.AF_INET\n"
    "with socket.socket(family, socket.SOCK_DGRAM) as s:\n"
    "    for _ in range(3):\n"
    "        for f in frames:\n"
    "            s.sendto(b'\\x08\\0\\0\\0' + vni.to_bytes(3, 'big') + b'\\0' + f, (address, 4789))\n"
)


def inject(lab: LabTopology, address: str, vni: int, payloads: list[bytes]) -> None:
    done = in_ns(lab.underlay_netns, "python3", "-c", INJECT, address, str(vni), *(p.hex() for p in payloads))
    assert done.returncode == 0, done.stderr


def written(path: Path) -> str:
    """What a running capture has written so far (``-U``: packet by packet)."""
    return subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True).stdout


def route_overlay_over_underlay(lab: LabTopology, host: LabHost, via: LabHost | None = None) -> list[str]:
    """The attacker routes ``host``'s overlay addresses to the underlay addresses of ``via`` (itself)."""
    targets, via = overlay_addresses(host), via or host
    for address in targets:
        gateway = str(via.ipv6 if ":" in address else via.ipv4)
        plen = "128" if ":" in address else "32"
        in_ns(lab.underlay_netns, "ip", "route", "replace", f"{address}/{plen}", "via", gateway)
    return targets


def assert_no_forged_frame_arrives(
    lab: LabTopology, where: Path, victim: str, canary: str, targets: list[str]
) -> None:
    """Raw VXLAN for ``victim`` (both tenants' VNIs) sent to ``targets`` from the underlay:
    nothing reaches it and its host's FDB does not learn the sender, while a
    frame from ``canary`` sent the legitimate way arrives (the capture was live)."""
    host = lab.host_named(WORKLOADS[victim][1])
    seen_by, forger = workload(lab, victim), workload(lab, canary)
    vnis = sorted(vxlans(host).values())
    assert len(vnis) == 2, vnis
    inside = Capture(workload_ns(lab, victim), "eth0", where / f"{victim}.pcap")
    for address in targets:
        for vni in vnis:  # both tenants' VNIs: the victim must see neither
            inject(lab, address, vni, frames(seen_by, forger["mac"]))
    assert ping(lab, canary, seen_by["ipv4"].split("/")[0])
    wait_for(lambda: "ICMP echo request" in written(inside.path), 10, f"the canary in {victim}'s capture")
    seen = inside.lines()
    assert not [line for line in seen if FAKE_IPV4 in line or FAKE_IPV6 in line], seen
    sender = underlay_addresses(lab)
    fdb = in_ns(host.netns, "bridge", "-j", "fdb", "show").stdout
    assert not [e for e in json.loads(fdb or "[]") if e.get("dst") in sender], fdb


def assert_injection_refused(lab: LabTopology, where: Path) -> None:
    """Sent to h1's underlay and (routed over the underlay) overlay addresses: nothing
    reaches a1, and nothing of a tenant leaves h1 in clear."""
    h1 = lab.host_named("h1")
    targets = [str(h1.ipv6), str(h1.ipv4), *route_overlay_over_underlay(lab, h1)]
    wire = Capture(lab.underlay_netns, h1.bridge_port, where / "wire.pcap", ("-Q", "in"))
    assert_no_forged_frame_arrives(lab, where, "a1", "a2", targets)
    left = wire.lines()
    assert not [line for line in left if "ICMP" in line and "echo" in line], left
    assert not [line for line in left if ".4789" in line or FAKE_IPV4 in line or FAKE_IPV6 in line], left


def test_underlay_vxlan_reaches_no_workload_without_a_policy(lab: LabTopology, tmp_path: Path) -> None:
    assert "ztos-host" not in in_ns(lab.host_named("h1").netns, "nft", "list", "tables").stdout
    assert_injection_refused(lab, tmp_path)


CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
    "    print('connected')\n"
    "except TimeoutError:\n"
    "    print('timeout')\n"
    "except OSError as exc:\n"
    "    print(type(exc).__name__)\n"
)


def test_the_gateway_answers_ping_but_no_connection(lab: LabTopology) -> None:
    tenant = next(t for t in json.loads(admin(lab, "tenant", "list", "--json")) if t["name"] == "a")
    gateway6 = str(ipaddress.ip_network(tenant["ipv6_prefix"]).network_address + 1)
    for gateway in ("10.20.0.1", gateway6):
        assert ping(lab, "a1", gateway), gateway
        for port in ("22", "80", "53"):
            answer = in_ns(workload_ns(lab, "a1"), "python3", "-c", CONNECT, gateway, port).stdout.strip()
            assert answer == "timeout", f"tcp/{port} to {gateway}: {answer} (a refusal means it answers)"
    h1 = lab.host_named("h1")
    assert "ztos-gw" in in_ns(f"{h1.netns}-t-a", "nft", "list", "tables").stdout


def bgp_established(host: LabHost) -> int:
    argv = ["vtysh", "--vty_socket", f"/var/run/frr/{host.netns}", "-c", "show bgp summary json"]
    shown = in_ns(host.netns, *argv)
    summary = json.loads(shown.stdout or "{}") if shown.returncode == 0 else {}
    peers = summary.get("l2VpnEvpn", {}).get("peers", {})
    return sum(peer.get("state") == "Established" for peer in peers.values())


def evpn_vteps(host: LabHost) -> bool:
    """Every VXLAN device recreated for EVPN: an IPv4 (overlay) local VTEP."""
    shown = json.loads(in_ns(host.netns, "ip", "-d", "-j", "link", "show", "type", "vxlan").stdout or "[]")
    return len(shown) == 2 and all("local" in link["linkinfo"]["info_data"] for link in shown)


def test_a_forwarding_host_relays_no_underlay_traffic_into_the_mesh(lab: LabTopology, tmp_path: Path) -> None:
    """h1 forwards and masquerades into WireGuard (as a careless container host might): VXLAN
    the underlay routes to h2's overlay addresses through h1 must still not reach a2."""
    h1, h2 = lab.host_named("h1"), lab.host_named("h2")
    nat = f"{lab.name}_masq"
    setup = [
        ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
        ["nft", "add", "table", "inet", nat],
        ["nft", "add", "chain", "inet", nat, "post", "{ type nat hook postrouting priority 100 ; }"],
        ["nft", "add", "rule", "inet", nat, "post", "oifname", h1.wg_interface, "masquerade"],
    ]
    try:
        for argv in setup:
            assert in_ns(h1.netns, *argv).returncode == 0, argv
        targets = route_overlay_over_underlay(lab, h2, via=h1)
        assert_no_forged_frame_arrives(lab, tmp_path, "a2", "a1", targets)
        listed = in_ns(h1.netns, "nft", "-j", "list", "chain", "inet", "ztos-underlay", "forward").stdout
        rules = [o["rule"] for o in json.loads(listed)["nftables"] if "rule" in o]
        dropped = sum(x["counter"]["packets"] for rule in rules for x in rule["expr"] if "counter" in x)
        assert dropped > 0, "h1's forward chain dropped the relayed packets"
    finally:
        in_ns(h1.netns, "nft", "delete", "table", "inet", nat)
        in_ns(h1.netns, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
        route_overlay_over_underlay(lab, h2)


def evpn_on(lab: LabTopology) -> None:
    admin(lab, "network", "configure", "--bgp", "--as", "65000")
    wait_for(lambda: all(bgp_established(h) == 1 for h in lab.hosts), 60, "BGP sessions over the overlay")
    wait_for(lambda: all(evpn_vteps(h) for h in lab.hosts), 30, "VXLAN devices in EVPN mode")
    in_ns(workload_ns(lab, "a1"), "ping", "-c", "1", "-W", "1", "10.20.0.1")  # a1 speaks: type-2 route


def assert_bgp_refused(lab: LabTopology) -> None:
    h1 = lab.host_named("h1")
    answer = in_ns(lab.underlay_netns, "python3", "-c", CONNECT, str(h1.ipv6), "179").stdout.strip()
    assert answer == "timeout", f"bgp from the underlay: {answer}"


# the tests below run in file order: EVPN without, then with a policy, then the policy in flood mode
def test_underlay_vxlan_and_bgp_reach_nothing_with_evpn_and_no_policy(
    lab: LabTopology, tmp_path: Path
) -> None:
    require_root_tools("vtysh", "/usr/lib/frr/bgpd")
    assert "ztos-host" not in in_ns(lab.host_named("h1").netns, "nft", "list", "tables").stdout
    evpn_on(lab)
    assert_injection_refused(lab, tmp_path)
    assert_bgp_refused(lab)


def test_underlay_vxlan_and_bgp_reach_nothing_with_evpn_and_a_policy(
    lab: LabTopology, tmp_path: Path
) -> None:
    require_root_tools("vtysh", "/usr/lib/frr/bgpd")
    if not all(evpn_vteps(h) for h in lab.hosts):
        evpn_on(lab)
    apply_policy(lab, tmp_path)
    assert_injection_refused(lab, tmp_path)
    assert_bgp_refused(lab)


# last: the policy stays (it allows the gateway nothing, so ping of it stops)
def test_underlay_vxlan_reaches_no_workload_with_a_policy(lab: LabTopology, tmp_path: Path) -> None:
    admin(lab, "network", "configure", "--no-bgp")
    wait_for(lambda: not any(evpn_vteps(h) for h in lab.hosts), 60, "VXLAN devices back in flood mode")
    apply_policy(lab, tmp_path)
    assert_injection_refused(lab, tmp_path)


def apply_policy(lab: LabTopology, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    admin(lab, "policy", "apply", str(path))
    h1 = lab.host_named("h1")
    wait_for(
        lambda: "ztos-host" in in_ns(h1.netns, "nft", "list", "tables").stdout, 60, "policy enforced on h1"
    )
    assert "ztos-underlay" in in_ns(h1.netns, "nft", "list", "tables").stdout, "policy apply kept the base"
