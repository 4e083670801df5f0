"""BGP EVPN with real FRR 8.4 across three hosts in network namespaces.

Topology (every name starts with the per-test prefix ``ztfr<4 hex>-``)::

    <p>sw: bridge <p>sw, ports p1 p2 p3        (stands in for the WireGuard overlay)
    <p>h1..h3: <p>u  2001:db8::i/64 (BGP) + 198.51.100.i/24 (VTEP)
               <p>vx VXLAN VNI 100, local 198.51.100.i, nolearning, in bridge <p>br
               <p>w workload veth (MAC 02:00:00:00:10:0i, 192.0.2.i/24), its peer <p>wp in <p>br
               FRR instance named like the namespace, iBGP to the other two over IPv6

Cleanup (fixture ``finally``, also on failure): stop every FRR instance by its
pid files, delete the namespaces, remove /var/run/frr/<instance> and the temp
config root. Waits are bounded polls; the observed timings are printed (-s).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest

from conftest import require_root_tools
from ztos.dataplane import links
from ztos.errors import Conflict, ToolError
from ztos.routing import frrconf
from ztos.routing.frr import BIN_DIR, RUN_ROOT, ApplyResult, FrrInstance
from ztos.routing.spec import BgpNeighbor, FrrSpec

pytestmark = pytest.mark.integration

VNI = 100
ASN = 65000
HOSTS = (1, 2, 3)
FLOOD_MAC = "00:00:00:00:00:00"
CONVERGE_S = 15.0
T = TypeVar("T")


@dataclass
class Host:
    index: int
    prefix: str
    frr: FrrInstance

    @property
    def netns(self) -> str:
        return self.frr.spec.instance

    @property
    def vtep(self) -> str:
        return f"198.51.100.{self.index}"

    @property
    def ipv6(self) -> str:
        return f"2001:db8::{self.index}"

    @property
    def mac(self) -> str:
        return f"02:00:00:00:10:0{self.index}"

    @property
    def workload_ip(self) -> str:
        return f"192.0.2.{self.index}"

    @property
    def vxlan(self) -> str:
        return f"{self.prefix}vx"


@dataclass
class Lab:
    prefix: str
    hosts: list[Host]

    def others(self, host: Host) -> list[Host]:
        return [other for other in self.hosts if other is not host]


def sh(netns: str, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} in {netns}: {done.stderr.strip()}")
    return done.stdout


def wait_until(check: Callable[[], T | None], what: str, timeout: float = CONVERGE_S) -> float:
    """Poll ``check`` until it returns something truthy; the seconds it took."""
    start = time.monotonic()
    last: T | None = None
    while time.monotonic() - start < timeout:
        last = check()
        if last:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not true after {timeout:.0f}s (last: {last!r})")


# --- topology --------------------------------------------------------------------


def build_switch(prefix: str) -> str:
    switch = prefix + "sw"
    links.create_netns(switch)
    sh(switch, "ip", "link", "add", switch, "type", "bridge")
    sh(switch, "ip", "link", "set", switch, "up")
    return switch


def build_host(prefix: str, index: int, switch: str) -> str:
    netns, uplink = f"{prefix}h{index}", f"{prefix}u"
    links.create_netns(netns)
    sh(netns, "ip", "link", "set", "lo", "up")
    subprocess.run(
        ["ip", "link", "add", uplink, "netns", netns, "type", "veth", "peer", f"p{index}", "netns", switch],
        check=True,
        capture_output=True,
    )
    sh(switch, "ip", "link", "set", f"p{index}", "master", switch, "up")
    sh(netns, "ip", "link", "set", uplink, "up")
    sh(netns, "ip", "addr", "add", f"2001:db8::{index}/64", "dev", uplink, "nodad")
    sh(netns, "ip", "addr", "add", f"198.51.100.{index}/24", "dev", uplink)
    build_tenant(prefix, index, netns)
    return netns


def build_tenant(prefix: str, index: int, netns: str) -> None:
    bridge, vxlan, workload, port = prefix + "br", prefix + "vx", prefix + "w", prefix + "wp"
    sh(netns, "ip", "link", "add", bridge, "type", "bridge")
    sh(netns, "ip", "link", "set", bridge, "up")
    vxlan_args = ["id", str(VNI), "local", f"198.51.100.{index}", "dstport", "4789", "nolearning"]
    sh(netns, "ip", "link", "add", vxlan, "type", "vxlan", *vxlan_args)
    sh(netns, "ip", "link", "set", vxlan, "master", bridge, "up")
    sh(netns, "bridge", "link", "set", "dev", vxlan, "neigh_suppress", "on", "learning", "off")
    sh(netns, "ip", "link", "add", workload, "address", f"02:00:00:00:10:0{index}", "mtu", "1450",
       "type", "veth", "peer", port)  # fmt: skip
    sh(netns, "ip", "link", "set", port, "master", bridge, "up")
    sh(netns, "ip", "link", "set", workload, "up")
    sh(netns, "ip", "addr", "add", f"192.0.2.{index}/24", "dev", workload)


def host_spec(prefix: str, index: int, config_root: Path) -> FrrSpec:
    neighbors = tuple(BgpNeighbor(f"2001:db8::{j}", description=f"h{j}") for j in HOSTS if j != index)
    return FrrSpec(
        instance=f"{prefix}h{index}",
        asn=ASN,
        router_id=f"198.51.100.{index}",
        neighbors=neighbors,
        evpn=True,
        config_dir=str(config_root / f"h{index}"),
    )


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root_tools("ip", "bridge", "vtysh", "ping")
    if not (BIN_DIR / "bgpd").exists():
        pytest.skip(f"FRR daemons missing in {BIN_DIR} (run make deps)")
    prefix = f"ztfr{secrets.token_hex(2)}-"
    config_root = Path(tempfile.gettempdir()) / f"{prefix}frr"
    hosts: list[Host] = []
    try:
        switch = build_switch(prefix)
        for index in HOSTS:
            netns = build_host(prefix, index, switch)
            hosts.append(Host(index, prefix, FrrInstance(host_spec(prefix, index, config_root), netns=netns)))
        yield Lab(prefix, hosts)
    finally:
        cleanup(prefix, hosts, config_root)


def cleanup(prefix: str, hosts: list[Host], config_root: Path) -> None:
    """Remove everything, carrying on past failures; the first one is raised at the end."""
    errors: list[Exception] = []
    for host in hosts:
        try:
            host.frr.stop()  # by pid file / socket owner: never a process-name pattern
        except Exception as exc:
            errors.append(exc)
        shutil.rmtree(RUN_ROOT / host.netns, ignore_errors=True)
    for netns in links.list_netns():
        if netns.startswith(prefix):
            links.delete_netns(netns)
    shutil.rmtree(config_root, ignore_errors=True)
    if errors:
        raise errors[0]


# --- observations ----------------------------------------------------------------


def established(host: Host, peers: list[Host]) -> bool:
    states = {peer.address: peer.established for peer in host.frr.bgp_summary()}
    return all(states.get(peer.ipv6) for peer in peers)


def remote_imet(host: Host) -> set[tuple[int | None, str]]:
    return {(route.vni, route.vtep) for route in host.frr.evpn_routes(3) if not route.local}


def remote_macip(host: Host) -> set[tuple[int | None, str | None, str]]:
    return {(route.vni, route.mac, route.vtep) for route in host.frr.evpn_routes(2) if not route.local}


def fdb(host: Host) -> set[tuple[str, str]]:
    """(MAC, remote VTEP) of the VXLAN's forwarding entries in the kernel."""
    rows = json.loads(sh(host.netns, "bridge", "-j", "fdb", "show", "dev", host.vxlan) or "[]")
    return {(row["mac"], row["dst"]) for row in rows if "dst" in row}


def expected_fdb(lab: Lab, host: Host) -> set[tuple[str, str]]:
    """A flood entry per remote VTEP (from type 3) and each remote workload MAC (from type 2)."""
    others = lab.others(host)
    return {(FLOOD_MAC, o.vtep) for o in others} | {(o.mac, o.vtep) for o in others}


def converged(lab: Lab) -> dict[str, float]:
    """Wait, stage by stage, for the full mesh; seconds per stage since the call."""
    start = time.monotonic()
    timings: dict[str, float] = {}

    def stage(name: str, check: Callable[[Host], bool]) -> None:
        wait_until(lambda: all(check(h) for h in lab.hosts), name)
        timings[name] = round(time.monotonic() - start, 2)

    stage("sessions established", lambda h: established(h, lab.others(h)))
    stage("type-3 seen", lambda h: remote_imet(h) == {(VNI, o.vtep) for o in lab.others(h)})
    stage("type-2 seen", lambda h: remote_macip(h) >= {(VNI, o.mac, o.vtep) for o in lab.others(h)})
    stage("FDB programmed", lambda h: fdb(h) >= expected_fdb(lab, h))
    return timings


# --- tests -----------------------------------------------------------------------


def test_evpn_mesh_converges_pings_and_withdraws(lab: Lab) -> None:
    for host in lab.hosts:
        assert host.frr.apply() is ApplyResult.STARTED
        assert host.frr.running()
    for host in lab.hosts:
        assert host.frr.apply() is ApplyResult.UNCHANGED, "a second apply must change nothing"
    timings = converged(lab)
    print(f"\nconvergence after the last apply: {timings}")

    h1, h2, h3 = lab.hosts
    assert {v.vni for v in h1.frr.evpn_vnis()} == {VNI}
    vni = h1.frr.evpn_vnis()[0]
    assert (vni.local_vtep, vni.remote_vteps) == (h1.vtep, (h2.vtep, h3.vtep))
    macs = {(m.mac, m.kind, m.vtep) for m in h1.frr.evpn_macs(VNI)}
    assert {(h2.mac, "remote", h2.vtep), (h3.mac, "remote", h3.vtep)} <= macs
    for target in (h2, h3):
        sh(h1.netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", h1.prefix + "w", target.workload_ip)

    stopped_at = time.monotonic()
    assert h3.frr.stop() is True
    assert not h3.frr.running()
    assert not (RUN_ROOT / h3.netns).exists()
    for host in (h1, h2):
        wait_until(lambda host=host: h3.vtep not in {v for _, v in remote_imet(host)}, "h3 type-3 withdrawn")
        wait_until(lambda host=host: all(dst != h3.vtep for _, dst in fdb(host)), "h3 FDB entries removed")
    print(f"h3 withdrawn everywhere {time.monotonic() - stopped_at:.2f}s after stop()")
    assert fdb(h3) == set(), "zebra removes the FDB entries it installed when it stops"
    assert h3.frr.stop() is False
    with pytest.raises(ToolError, match="failed to connect"):
        h3.frr.bgp_summary()


def test_reload_touches_only_changed_peers(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for host in lab.hosts:
        host.frr.apply()
    converged(lab)
    h1, h2, h3 = lab.hosts
    before = {p.address: p.uptime_ms for p in h1.frr.bgp_summary()}

    only_h2 = (BgpNeighbor(h2.ipv6, description="h2"),)
    h1.frr = FrrInstance(replace(h1.frr.spec, neighbors=only_h2), netns=h1.netns)
    assert h1.frr.apply() is ApplyResult.RELOADED
    assert h1.frr.apply() is ApplyResult.UNCHANGED
    peers = {p.address: p for p in h1.frr.bgp_summary()}
    assert set(peers) == {h2.ipv6}
    assert peers[h2.ipv6].established, "the unchanged session stays up through a reload"
    assert peers[h2.ipv6].uptime_ms >= before[h2.ipv6]
    wait_until(lambda: h1.vtep not in {v for _, v in remote_imet(h3)}, "h3 loses h1's type-3")

    h1.frr.show("configure terminal\nrouter bgp 65000\nno neighbor 2001:db8::2")
    assert h1.frr.bgp_summary() == ()
    assert h1.frr.apply() is ApplyResult.RELOADED, "a hand edit through vtysh is drift, repaired"
    wait_until(lambda: established(h1, [h2]), "h1-h2 session back after drift repair")

    elsewhere = FrrInstance(h1.frr.spec, netns=h2.netns)
    with pytest.raises(Conflict, match="another network namespace"):
        elsewhere.apply()

    good = h1.frr.config_path.read_text()
    render = frrconf.render
    monkeypatch.setattr(frrconf, "render", lambda spec: render(spec) + "router bgp 65000\n bogus line\n")
    with pytest.raises(ToolError, match=r"Unknown command.*bogus line"):
        h1.frr.apply()
    assert h1.frr.config_path.read_text() == good, "a rejected config must not replace the last good one"
    assert established(h1, [h2]), "and the running daemons keep their config"


def test_golden_configs_pass_frr_dry_run(tmp_path: Path) -> None:
    """The golden files are what FRR 8.4 itself accepts (``vtysh -C``), not just what we expect."""
    require_root_tools("vtysh")
    (tmp_path / "vtysh.conf").write_text("")
    golden = sorted((Path(__file__).resolve().parents[1] / "golden" / "frr").glob("*.conf"))
    assert golden
    for conf in golden:
        done = subprocess.run(
            ["vtysh", "--config_dir", str(tmp_path), "-C", "-f", str(conf)], capture_output=True, text=True
        )
        assert done.returncode == 0, f"{conf.name}: {done.stdout}{done.stderr}"
