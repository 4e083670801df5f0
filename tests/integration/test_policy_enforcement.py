"""Policy enforced by nftables on two hosts, checked with real sockets.

Two "hosts" (namespaces joined by a switch namespace, VXLAN over plain veths
standing in for WireGuard) serve tenant ``corp`` (VNI 100, 10.30.0.0/24 and
fd00:30::/64), built with ``reconcile_tenants``::

    h1 (posture: unhealthy, risk 80): fin1 (alice, finance), pg2 (service db),
                                      mkt1 (bob, marketing), ops2 (carol, ops)
    h2 (posture: healthy, risk 10):   pg1 (service db), web1 (tag web), ops1 (carol, ops)

The policy is ``tests/golden/policy/finance.yaml`` (finance -> db tcp/5432,
marketing -> web, ops -> corp tcp/22+icmp from healthy devices, * -> web1
udp/53). Each host gets ``compile_tenant`` applied through the nftables
adapter. Every workload runs a small probe agent (TCP and UDP echo servers
on the test ports, plus a client taking JSON commands on stdin), so hundreds
of flows are tried concurrently with bounded timeouts.

Where the kernel lacks ``nf_conntrack_bridge`` (this CI kernel), the tenant
tables are stateless (reply rules); elsewhere they use conntrack. Either way
a member removed from a set loses its established flows on the next packet.
The kernel log is read with ``dmesg``; netfilter logs from namespaces other
than the initial one need ``net.netfilter.nf_log_all_netns=1``, which the
test sets for its duration and restores.

Namespaces are named ``ztpo<4 hex>-…`` and removed at the end, even on failure.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import require_root_tools
from ztos.dataplane import links, nftables
from ztos.dataplane.tenant_reconcile import reconcile_tenants
from ztos.dataplane.tenant_state import TenantSpec, TenantsSpec, WorkloadSpec
from ztos.errors import ToolError
from ztos.policy import (
    HostPorts,
    NodeInfo,
    Policy,
    Snapshot,
    TenantPorts,
    UserInfo,
    WorkloadInfo,
    compile_host,
    compile_tenant,
    decide,
    diff_sets,
    load_policy,
    load_policy_file,
    name_drop,
)
from ztos.policy.model import GroupDef

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent.parent / "golden" / "policy" / "finance.yaml"
UNDERLAY = "2001:db8:ffff::{}"
MTU = 1430
VNI = 100
GW_MAC = "02:00:5e:00:1e:01"
NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
TCP_PORTS = (22, 80, 443, 5432, 8080)
UDP_PORTS = (53, 5353)
# name: (host, last octet, owner, tags)
WORKLOADS: dict[str, tuple[int, int, str | None, tuple[str, ...]]] = {
    "fin1": (1, 10, "alice", ()),
    "pg1": (2, 11, None, ()),
    "pg2": (1, 12, None, ()),
    "mkt1": (1, 13, "bob", ()),
    "web1": (2, 14, None, ("web",)),
    "ops1": (2, 15, "carol", ()),
    "ops2": (1, 16, "carol", ()),
}
POSTURE = {
    1: {"posture.healthy": "false", "risk_score": "80"},
    2: {"posture.healthy": "true", "risk_score": "10"},
}
TABLE = "ztos-t-corp"

PROBE_AGENT = r"""
import json, socket, sys, threading
TCP, UDP = [int(p) for p in sys.argv[1].split(",")], [int(p) for p in sys.argv[2].split(",")]
lock, held = threading.Lock(), {}
def out(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
def listener(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s
def echo(conn):
    with conn:
        try:
            while data := conn.recv(4096): conn.sendall(data)
        except OSError: pass
def serve_tcp(s):
    s.listen(256)
    while True:
        conn, _ = s.accept(); threading.Thread(target=echo, args=(conn,), daemon=True).start()
def serve_udp(s):
    while True:
        data, peer = s.recvfrom(2048); s.sendto(data, peer)
def family(addr): return socket.AF_INET6 if ":" in addr else socket.AF_INET
def roundtrip(sock, timeout):
    sock.settimeout(timeout); sock.sendall(b"x"); return sock.recv(1) == b"x"
def run(cmd):
    op, t = cmd["op"], cmd.get("timeout", 1.5)
    try:
        if op == "tcp":
            with socket.create_connection((cmd["addr"], cmd["port"]), timeout=t) as c: ok = roundtrip(c, t)
        elif op == "udp":
            with socket.socket(family(cmd["addr"]), socket.SOCK_DGRAM) as u:
                u.settimeout(t); u.sendto(b"x", (cmd["addr"], cmd["port"])); ok = u.recvfrom(16)[0] == b"x"
        elif op == "hold":
            held[cmd["name"]] = socket.create_connection((cmd["addr"], cmd["port"]), timeout=t)
            ok = roundtrip(held[cmd["name"]], t)
        elif op == "send":
            ok = roundtrip(held[cmd["name"]], t)
        elif op == "close":
            held.pop(cmd["name"]).close(); ok = True
        out({"id": cmd["id"], "ok": ok, "error": ""})
    except (OSError, KeyError) as exc:
        out({"id": cmd["id"], "ok": False, "error": type(exc).__name__ + ": " + str(exc)})
def start(serve, kind, port):
    threading.Thread(target=serve, args=(listener(kind, port),), daemon=True).start()
for port in TCP: start(serve_tcp, socket.SOCK_STREAM, port)
for port in UDP: start(serve_udp, socket.SOCK_DGRAM, port)
out({"ready": True})
for line in sys.stdin:
    threading.Thread(target=run, args=(json.loads(line),), daemon=True).start()
"""


class Probe:
    """A probe agent in one workload namespace; ``ask`` sends a command and waits for its answer."""

    def __init__(self, netns: str, script: Path) -> None:
        argv = ["ip", "netns", "exec", netns, sys.executable, str(script)]
        argv += [",".join(map(str, TCP_PORTS)), ",".join(map(str, UDP_PORTS))]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pending: dict[int, Future[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.next_id = 0
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert json.loads(first) == {"ready": True}, f"probe in {netns} did not start: {first!r}"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            answer = json.loads(line)
            with self.lock:
                future = self.pending.pop(answer["id"], None)
            if future is not None:
                future.set_result(answer)

    def ask(self, **command: Any) -> dict[str, Any]:
        future: Future[dict[str, Any]] = Future()
        with self.lock:
            self.next_id += 1
            command["id"] = self.next_id
            self.pending[self.next_id] = future
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        return future.result(timeout=command.get("timeout", 1.5) * 3 + 5)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)


@dataclass
class World:
    prefix: str
    tmp: Path
    policy: Policy
    snapshot: Snapshot
    specs: dict[int, TenantsSpec] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)
    conntrack: bool = False

    def host(self, index: int) -> str:
        return f"{self.prefix}-h{index}"

    def workload_ns(self, name: str) -> str:
        return f"{self.host(WORKLOADS[name][0])}-w-{name}"

    def ports(self, host: int) -> TenantPorts:
        tenant = self.specs[host].tenants[0]
        return TenantPorts(tenant.vxlan, tenant.gateway_port, {w.name: w.host_port for w in tenant.workloads})

    def compiled(self, host: int, policy: Policy | None = None) -> dict[str, Any]:
        return compile_tenant(
            policy or self.policy, self.snapshot, f"h{host}", "corp", self.ports(host),
            now=NOW, conntrack=self.conntrack,
        )  # fmt: skip


def address(name: str, version: int) -> str:
    last = WORKLOADS[name][1]
    return f"10.30.0.{last}" if version == 4 else f"fd00:30::{last}"


def snapshot() -> Snapshot:
    return Snapshot.build(
        nodes=[NodeInfo(f"h{h}", (UNDERLAY.format(h),), attributes=POSTURE[h]) for h in (1, 2)],
        users=[UserInfo("alice"), UserInfo("bob"), UserInfo("carol")],
        workloads=[
            WorkloadInfo(name, "corp", f"h{host}", (address(name, 4), address(name, 6)), owner, tags)
            for name, (host, _, owner, tags) in WORKLOADS.items()
        ],
    )


def workload_spec(world: World, name: str) -> WorkloadSpec:
    last = WORKLOADS[name][1]
    return WorkloadSpec(
        name=name,
        netns=world.workload_ns(name),
        host_port=f"zt-w{name}",
        mac=f"02:30:00:00:00:{last:02x}",
        addresses=(f"10.30.0.{last}/24", f"fd00:30::{last}/64"),
        gateways=("10.30.0.1", "fd00:30::1"),
    )


def tenants_spec(world: World, host: int) -> TenantsSpec:
    other = 2 if host == 1 else 1
    tenant = TenantSpec(
        name="corp", vni=VNI, vxlan=f"zt-v{VNI}", bridge=f"zt-b{VNI}", gateway_port=f"zt-g{VNI}",
        vrf_netns=f"{world.host(host)}-t-corp", local_vtep=UNDERLAY.format(host), mtu=MTU, learning=True,
        flood=(UNDERLAY.format(other),), gateway_mac=GW_MAC,
        gateway_addresses=("10.30.0.1/24", "fd00:30::1/64"),
        workloads=tuple(workload_spec(world, n) for n, (h, *_) in WORKLOADS.items() if h == host),
    )  # fmt: skip
    return TenantsSpec((tenant,), device_prefix="zt-", netns_prefix=f"{world.host(host)}-")


def build(world: World) -> None:
    switch = f"{world.prefix}-sw"
    links.create_netns(switch)
    links.create_bridge("sw0", switch)
    for host in (1, 2):
        netns = world.host(host)
        links.create_netns(netns)
        links.create_veth("ul0", f"h{host}", netns=netns, peer_netns=switch)
        links.set_master(f"h{host}", "sw0", switch)
        links.set_link(f"h{host}", switch, up=True)
        links.set_link("ul0", netns, up=True)
        links.add_address("ul0", f"{UNDERLAY.format(host)}/64", netns)
        world.specs[host] = tenants_spec(world, host)
        reconcile_tenants(world.specs[host], netns)
    world.conntrack = nftables.bridge_conntrack(world.host(1))
    for host in (1, 2):
        nftables.apply(world.compiled(host), world.host(host))
    script = world.tmp / "probe_agent.py"
    script.write_text(PROBE_AGENT)
    for name in WORKLOADS:
        world.probes[name] = Probe(world.workload_ns(name), script)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_root_tools("ip", "nft", "ping", "dmesg")
    built = World(
        prefix=f"ztpo{secrets.token_hex(2)}",
        tmp=tmp_path_factory.mktemp("policy"),
        policy=load_policy_file(GOLDEN),
        snapshot=snapshot(),
    )
    log_all = Path("/proc/sys/net/netfilter/nf_log_all_netns")
    saved = log_all.read_text().strip() if log_all.exists() else None
    try:
        if saved is not None:
            log_all.write_text("1")
        build(built)
        yield built
    finally:
        for probe in built.probes.values():
            probe.close()
        for netns in links.list_netns():
            if netns.startswith(built.prefix):
                links.delete_netns(netns)
        if saved is not None:
            log_all.write_text(saved)


# --- helpers -------------------------------------------------------------------------------


def tcp(world: World, src: str, dst: str, port: int, version: int = 4, timeout: float = 1.5) -> bool:
    return bool(world.probes[src].ask(op="tcp", addr=address(dst, version), port=port, timeout=timeout)["ok"])


def udp(world: World, src: str, dst: str, port: int, version: int = 4, timeout: float = 1.5) -> bool:
    return bool(world.probes[src].ask(op="udp", addr=address(dst, version), port=port, timeout=timeout)["ok"])


def ping(world: World, src: str, dst: str, version: int = 4) -> bool:
    argv = [
        "ip",
        "netns",
        "exec",
        world.workload_ns(src),
        "ping",
        "-n",
        "-c",
        "1",
        "-W",
        "1",
        address(dst, version),
    ]
    return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0


def drops(world: World, host: int) -> dict[str, tuple[int, int]]:
    return nftables.counters("bridge", TABLE, world.host(host))


def kernel_log() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10, check=True).stdout


def without_alice(policy: Policy) -> Policy:
    groups = {**policy.groups, "finance": GroupDef(users=(), comment=policy.groups["finance"].comment)}
    return policy.model_copy(update={"groups": groups})


# --- tests ---------------------------------------------------------------------------------


def test_apply_is_idempotent_and_a_bad_ruleset_keeps_the_old_one(world: World) -> None:
    h1 = world.host(1)
    again = nftables.apply(world.compiled(1), h1)
    assert [r.action for r in again] == ["unchanged"]
    before = nftables.installed_digest("bridge", TABLE, h1)
    broken = world.compiled(1)
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    bogus = {"family": "bridge", "table": TABLE, "chain": "ztos_v4", "expr": [
        {"match": {"op": "==", "left": saddr, "right": "@nope"}}]}  # fmt: skip
    broken["nftables"].insert(-2, {"rule": bogus})
    with pytest.raises(ToolError, match=r"nope|No such file"):
        nftables.apply(broken, h1, force=True)
    assert nftables.installed_digest("bridge", TABLE, h1) == before
    assert tcp(world, "fin1", "pg2", 5432), "the old ruleset still works"


def test_finance_reaches_db_across_hosts_and_on_the_same_host(world: World) -> None:
    for version in (4, 6):
        assert tcp(world, "fin1", "pg1", 5432, version), f"fin1 -> pg1:5432 over IPv{version} (h1 -> h2)"
        assert tcp(world, "fin1", "pg2", 5432, version), f"fin1 -> pg2:5432 over IPv{version} (both on h1)"


def test_everything_else_is_refused(world: World) -> None:
    checks: dict[str, tuple[bool, Any]] = {}
    for v in (4, 6):
        checks |= {
            f"fin1 -> pg1:22 IPv{v}": (False, lambda v=v: tcp(world, "fin1", "pg1", 22, v, 1.0)),
            f"fin1 -> pg2:22 IPv{v} (same host)": (False, lambda v=v: tcp(world, "fin1", "pg2", 22, v, 1.0)),
            f"mkt1 -> pg1:5432 IPv{v}": (False, lambda v=v: tcp(world, "mkt1", "pg1", 5432, v, 1.0)),
            f"mkt1 -> pg2:5432 IPv{v} (same host)": (
                False,
                lambda v=v: tcp(world, "mkt1", "pg2", 5432, v, 1.0),
            ),
            f"pg1 -> fin1:5432 IPv{v} (no flow back)": (
                False,
                lambda v=v: tcp(world, "pg1", "fin1", 5432, v, 1.0),
            ),
            f"ICMP fin1 -> pg1 IPv{v}": (False, lambda v=v: ping(world, "fin1", "pg1", v)),
            f"ICMP fin1 -> pg2 IPv{v} (same host)": (False, lambda v=v: ping(world, "fin1", "pg2", v)),
            f"ICMP ops1 -> fin1 IPv{v} (healthy)": (True, lambda v=v: ping(world, "ops1", "fin1", v)),
            f"ICMP ops2 -> fin1 IPv{v} (unhealthy)": (False, lambda v=v: ping(world, "ops2", "fin1", v)),
        }
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        seen = dict(zip(checks, pool.map(lambda check: check[1](), checks.values()), strict=True))
    wrong = [
        f"{what}: expected {'pass' if want else 'blocked'}"
        for what, (want, _) in checks.items()
        if seen[what] != want
    ]
    assert not wrong, "\n".join(wrong)


def test_drops_are_counted_and_logged_with_the_identities(world: World) -> None:
    before = drops(world, 1).get("ztos-drop fin1", (0, 0))[0]
    assert not tcp(world, "fin1", "pg1", 22, timeout=1.0)
    assert drops(world, 1)["ztos-drop fin1"][0] > before, "h1 counts fin1's drop"
    deadline = time.monotonic() + 3
    named: list[str] = []
    while time.monotonic() < deadline and not named:
        lines = [
            line for line in kernel_log().splitlines() if "ztos-drop corp fin1:" in line and "DPT=22" in line
        ]
        named = [str(name_drop(line, world.snapshot)) for line in lines]
        time.sleep(0.1)
    assert "corp: fin1 -> pg1 tcp/22 dropped" in named, "no ztos-drop line naming fin1 and pg1 in dmesg"


def test_workloads_cannot_borrow_another_identity(world: World) -> None:
    mkt1 = world.workload_ns("mkt1")
    before = drops(world, 1).get("ztos-spoof", (0, 0))[0]
    subprocess.run(
        ["ip", "netns", "exec", mkt1, "ip", "addr", "add", "10.30.0.10/32", "dev", "eth0"], check=True
    )
    try:
        command = ["ip", "netns", "exec", mkt1, sys.executable, "-c",
                   "import socket; s=socket.socket(); s.settimeout(1); s.bind(('10.30.0.10', 0)); "
                   "s.connect_ex(('10.30.0.12', 5432))"]  # fmt: skip
        subprocess.run(command, capture_output=True, timeout=10, check=False)
    finally:
        subprocess.run(
            ["ip", "netns", "exec", mkt1, "ip", "addr", "del", "10.30.0.10/32", "dev", "eth0"], check=True
        )
    assert drops(world, 1)["ztos-spoof"][0] > before, "mkt1 sending as fin1 was not dropped as spoofed"


Case = tuple[str, str, str, int | None, int]


def random_cases(world: World, rng: random.Random, count: int) -> list[Case]:
    """Half drawn from every possible flow, half from the allowed ones (else nearly all are denials)."""
    flows = [("tcp", p) for p in TCP_PORTS] + [("udp", p) for p in UDP_PORTS] + [("icmp", None)]
    every: list[Case] = [
        (src, dst, proto, port, version)
        for src in sorted(WORKLOADS)
        for dst in sorted(WORKLOADS)
        if src != dst
        for proto, port in flows
        for version in (4, 6)
    ]
    allowed = [c for c in every if decide(world.policy, world.snapshot, *c[:4], NOW).allowed]
    picked = rng.choices(allowed, k=count // 2)
    return picked + rng.sample(every, count - len(picked))


def test_policy_test_agrees_with_packets_on_random_flows(world: World) -> None:
    seed = secrets.randbits(32)
    cases = random_cases(world, random.Random(seed), 240)

    def attempt(case: Case) -> tuple[bool, bool, str]:
        src, dst, proto, port, version = case
        expected = decide(world.policy, world.snapshot, src, dst, proto, port, NOW)
        if proto == "icmp":
            actual = ping(world, src, dst, version)
        else:
            actual = (tcp if proto == "tcp" else udp)(world, src, dst, port or 0, version, 1.5)
        return expected.allowed, actual, expected.reason

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=48) as pool:
        results = list(pool.map(attempt, cases))
    elapsed = time.monotonic() - started
    wrong = [
        f"{src}->{dst} {proto}/{port} IPv{v}: decide={exp} packets={act} ({reason})"
        for (src, dst, proto, port, v), (exp, act, reason) in zip(cases, results, strict=True)
        if exp != act
    ]
    allowed = sum(1 for exp, _, _ in results if exp)
    assert not wrong, f"seed {seed}: {len(wrong)} of {len(cases)} disagree:\n" + "\n".join(wrong)
    assert 60 <= allowed <= len(cases) - 60, f"seed {seed}: {allowed} allowed: the sample is too one-sided"
    assert elapsed < 30, f"{len(cases)} flows took {elapsed:.1f}s"


def test_leaving_the_group_changes_only_sets_and_cuts_the_open_flow(world: World) -> None:
    fin1 = world.probes["fin1"]
    assert fin1.ask(op="hold", name="db", addr=address("pg1", 4), port=5432)["ok"], "open fin1 -> pg1:5432"
    changed = without_alice(world.policy)
    commands = {host: diff_sets(world.compiled(host), world.compiled(host, changed)) for host in (1, 2)}
    for host, found in commands.items():
        assert found, f"h{host}: removing alice must change set elements"
        assert all(set(c) <= {"add", "delete"} and set(next(iter(c.values()))) == {"element"} for c in found)
    started = time.monotonic()
    for host in (1, 2):
        nftables.update_sets(commands[host] or [], world.host(host))
    cut = not fin1.ask(op="send", name="db", timeout=1.0)["ok"]
    elapsed = time.monotonic() - started
    try:
        assert cut and elapsed <= 2.0, f"the open flow still passes {elapsed:.2f}s after the update"
        assert not tcp(world, "fin1", "pg1", 5432, timeout=1.0), "no new flow either"
        assert [r.action for r in nftables.apply(world.compiled(1, changed), world.host(1))] == ["unchanged"]
    finally:
        for host in (1, 2):
            undo = diff_sets(world.compiled(host, changed), world.compiled(host))
            nftables.update_sets(undo or [], world.host(host))
        fin1.ask(op="close", name="db")
    assert tcp(world, "fin1", "pg1", 5432), "back in finance, back to the db"
    assert drops(world, 2).get("r1_db finance-to-db", (0, 0))[0] > 0, "rule counters survived the updates"


def test_apply_repairs_set_drift_without_a_swap(world: World) -> None:
    h2 = world.host(2)
    subprocess.run(
        ["ip", "netns", "exec", h2, "nft", "flush", "set", "bridge", TABLE, "ztos_r1_src4"], check=True
    )
    assert not tcp(world, "fin1", "pg1", 5432, timeout=1.0), "control: the drift blocks fin1"
    results = nftables.apply(world.compiled(2), h2)
    assert [(r.action, r.element_commands) for r in results] == [("sets", 1)]
    assert tcp(world, "fin1", "pg1", 5432)


def test_snapshot_is_the_one_the_policy_names(world: World) -> None:
    """Guards the fixture: a posture change is a set change too."""
    healthy = replace(world.snapshot.nodes["h1"], attributes=POSTURE[2])
    moved = replace(world, snapshot=world.snapshot.with_node(healthy))
    found = diff_sets(world.compiled(1), moved.compiled(1))
    assert found and all("add" in c for c in found), "ops2 on a now healthy h1 joins the ops-admin source set"


# --- the host table: node-to-node traffic over the mesh, always stateful ----------------------------

MESH_POLICY = """
groups:
  ops: {nodes: [h1]}
rules:
  - name: ops-ssh
    from: {groups: [ops]}
    to: {nodes: [h2]}
    ports: [tcp/22]
"""
MESH = {1: ("fd00:99::1", "10.99.0.1"), 2: ("fd00:99::2", "10.99.0.2")}


@dataclass
class Mesh:
    prefix: str
    policy: Policy
    snapshot: Snapshot
    probes: dict[int, Probe] = field(default_factory=dict)

    def host(self, index: int) -> str:
        return f"{self.prefix}-m{index}"

    def compiled(self, policy: Policy | None = None) -> dict[str, Any]:
        ports = HostPorts(wg_ifname="ztos0")
        return compile_host(policy or self.policy, self.snapshot, "h2", now=NOW, ports=ports)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """Two hosts joined by a veth named like the WireGuard link; h2 enforces its host table."""
    require_root_tools("ip", "nft", "ping")
    nodes = [NodeInfo(f"h{i}", MESH[i]) for i in (1, 2)]
    built = Mesh(f"ztpo{secrets.token_hex(2)}", load_policy(MESH_POLICY), Snapshot.build(nodes=nodes))
    script = tmp_path_factory.mktemp("mesh") / "probe_agent.py"
    script.write_text(PROBE_AGENT)
    try:
        for i in (1, 2):
            links.create_netns(built.host(i))
        links.create_veth("ztos0", "ztos0", netns=built.host(1), peer_netns=built.host(2))
        for i in (1, 2):
            links.set_link("ztos0", built.host(i), up=True)
            links.set_link("lo", built.host(i), up=True)
            links.add_address("ztos0", f"{MESH[i][0]}/64", built.host(i))
            links.add_address("ztos0", f"{MESH[i][1]}/24", built.host(i))
        nftables.apply(built.compiled(), built.host(2))
        built.probes = {i: Probe(built.host(i), script) for i in (1, 2)}
        yield built
    finally:
        for probe in built.probes.values():
            probe.close()
        for netns in links.list_netns():
            if netns.startswith(built.prefix):
                links.delete_netns(netns)


def mesh_tcp(mesh: Mesh, src: int, dst: int, port: int, version: int, timeout: float = 1.0) -> bool:
    addr = MESH[dst][0 if version == 6 else 1]
    return bool(mesh.probes[src].ask(op="tcp", addr=addr, port=port, timeout=timeout)["ok"])


def test_host_table_allows_by_node_group_and_answers_what_the_host_opened(mesh: Mesh) -> None:
    for version in (4, 6):
        assert mesh_tcp(mesh, 1, 2, 22, version), f"h1 (ops) -> h2:22 over IPv{version}"
        assert not mesh_tcp(mesh, 1, 2, 5432, version), f"h1 -> h2:5432 over IPv{version}"
        assert mesh_tcp(mesh, 2, 1, 5432, version), "replies to flows h2 opened pass (ct mark 0)"
        argv = [
            "ip",
            "netns",
            "exec",
            mesh.host(1),
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "1",
            MESH[2][1 if version == 4 else 0],
        ]
        assert subprocess.run(argv, capture_output=True, check=False).returncode == 0, "mesh ping is built in"
    assert nftables.counters("inet", "ztos-host", mesh.host(2))["ztos-drop host"][0] > 0


def test_host_table_cuts_an_established_flow_when_membership_ends(mesh: Mesh) -> None:
    """Stateful: the flow is ``ct mark``ed with its clause and re-checked against that clause's sets."""
    h1 = mesh.probes[1]
    assert h1.ask(op="hold", name="ssh", addr=MESH[2][1], port=22)["ok"]
    left = load_policy(MESH_POLICY.replace("{nodes: [h1]}", "{nodes: []}"))
    commands = diff_sets(mesh.compiled(), mesh.compiled(left))
    assert commands, "leaving ops is an element change"
    try:
        assert h1.ask(op="send", name="ssh")["ok"], "control: the flow works before the change"
        nftables.update_sets(commands, mesh.host(2))
        assert not h1.ask(op="send", name="ssh", timeout=1.0)["ok"], "the established flow survived"
    finally:
        nftables.update_sets(diff_sets(mesh.compiled(left), mesh.compiled()) or [], mesh.host(2))
        h1.ask(op="close", name="ssh")
    assert mesh_tcp(mesh, 1, 2, 22, 4), "back in ops"
