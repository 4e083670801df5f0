"""Compile a policy to nftables JSON for one enforcement point; pure, golden-tested.

Two kinds of enforcement point per host:

``compile_host`` -> ``table inet ztos-host``: an ``input`` hook for traffic
  arriving over the WireGuard interface to the node's own overlay addresses.
  Everything else on the host (underlay, loopback) is not ZTOS's to police;
  what ZTOS itself needs always passes: WireGuard UDP, VXLAN (only from the
  WireGuard interface and other nodes), BGP between nodes, the controller
  API, ICMPv6 neighbour discovery, and established flows.

``compile_base`` -> ``table inet ztos-underlay``: installed from agent start,
  policy or not, and left alone by policy applies: VXLAN, BGP and the node's
  overlay addresses are reachable only through the WireGuard interface.

``compile_tenant`` -> ``table bridge ztos-t-<tenant>``: a ``forward`` hook
  on the bridge family, scoped by a set of the tenant's bridge ports, so two
  workloads on the *same* host are filtered too (micro-segmentation). Workload
  ports may only send from their own addresses (``ztos_bind4/6``): policy by
  address means nothing if a workload can borrow another's. ARP and ND pass.

Rule sides become named sets, ``ztos_r<N>_src4/6`` per rule and
``ztos_r<N>[_<service>]_dst4/6`` per clause (``ztos.policy.resolve``), holding
the addresses of the identities that match the selector *and* its
conditions at compile time. They are hash sets, or interval sets (collapsed
to the fewest prefixes) once some identity is a prefix rather than a host:
at 10,000 elements rbtree lookups cost ~12% of small-packet throughput and
hash lookups nothing measurable. Sides written identically (same selector, same
conditions) share the sets of the first rule that has them: nft's cost grows
with the square of the number of sets, and policies repeat groups a lot. So
a change of membership, posture or time window changes set elements only:
``diff_sets`` turns two compilations into element add/delete commands, and
the rule list (and its counters) stays.

Connection state. With conntrack, a new flow accepted by clause ``M`` gets
``ct mark M``; established packets are dispatched by ``ct mark vmap`` to one
short chain that re-checks *that clause's sets* in the flow's direction. A
removed member is thus cut on its next packet, with no conntrack flush and no
walk of the rule list. The bridge family only has conntrack with the
``nf_conntrack_bridge`` module (``CONFIG_NF_CONNTRACK_BRIDGE``; the adapter's
``bridge_conntrack`` probes for it): without it, ``compile_tenant(...,
conntrack=False)`` emits stateless reply rules instead, namely TCP from the
server port that is not a bare SYN, UDP from the server port, ICMP echo
replies. A server can then answer but never open a connection; the price is
that UDP replies are matched by port only. The inet family always has
conntrack, so the host table is always stateful.

Drops are counted and logged at most ``LOG_RATE``/s per source: the tenant
table logs ``ztos-drop <tenant> <workload>: …`` through one chain per local
workload port (``remote`` for frames from the VXLAN port, ``gateway`` for
the gateway port); ``ztos.policy.drops`` names both ends of a log line.

Every table holds a chain ``ztos_meta`` whose one rule's comment carries the
digest of the table's *structure* (everything but set elements): the adapter
compares it to decide between an element update and a full atomic swap.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ztos.policy import nftjson as nj
from ztos.policy.model import Policy, PortSpec, Selector
from ztos.policy.resolve import Clause, Members, Resolver, attr_conditions, clauses, time_conditions
from ztos.policy.snapshot import Snapshot

Json = dict[str, Any]
HOST_TABLE = "ztos-host"
BASE_TABLE = "ztos-underlay"
GATEWAY_TABLE = "ztos-gw"
BASE_PRIO = -10  # before ztos-host (0): its drops are final whatever ztos-host accepts
TENANT_TABLE_PREFIX = "ztos-t-"
META_CHAIN = "ztos_meta"
DIGEST_MARK = "ztos structure sha256="
FILTER_PRIO = {"bridge": -200, "inet": 0}
ND_TYPES = [
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "mld2-listener-report",
]
IP = {4: ("ip", "ipv4_addr", "icmp"), 6: ("ip6", "ipv6_addr", "icmpv6")}


@dataclass(frozen=True)
class TenantPorts:
    """The tenant's bridge ports on this host (host-namespace link names)."""

    vxlan: str
    gateway: str
    workloads: Mapping[str, str]  # workload name -> its veth end on the bridge


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """No cyclic GC while building: the build makes only acyclic dicts and lists, and at
    10,000 rules the collector rescanning them was a third of the compile time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _needs_intervals(snapshot: Snapshot) -> bool:
    """Interval sets only where some identity is a prefix: measured at 10,000 elements,
    rbtree lookups cost ~12% of small-packet throughput, hash lookups nothing."""
    every = [a for w in snapshot.workloads.values() for a in w.addresses]
    return nj.has_prefixes(every + [a for n in snapshot.nodes.values() for a in n.addresses])


def tenant_table(tenant: str) -> str:
    return f"{TENANT_TABLE_PREFIX}{tenant}"


class _Table:
    """Collects one table's objects in an order nft accepts (sets and chains before rules)."""

    def __init__(self, family: str, name: str, stateful: bool, intervals: bool) -> None:
        self.family, self.name, self.stateful, self.intervals = family, name, stateful, intervals
        self.sets: list[Json] = []
        self.chains: list[Json] = []
        self.rules: list[Json] = []

    def set(self, name: str, kind: str | list[str], elements: list[Any]) -> str:
        interval = self.intervals and kind != "ifname"
        self.sets.append(nj.named_set(self.family, self.name, name, kind, elements, interval))
        return nj.at(name)

    def addresses(self, addresses: Iterable[str], version: int) -> list[Any]:
        return nj.address_elements(addresses, version, collapse=self.intervals)

    def chain(self, name: str, hook: str | None = None) -> str:
        if hook:
            self.chains.append(nj.base_chain(self.family, self.name, name, hook, FILTER_PRIO[self.family]))
        else:
            self.chains.append(nj.chain(self.family, self.name, name))
        return name

    def rule(self, chain: str, expr: nj.Expr, comment: str | None = None) -> None:
        self.rules.append(nj.rule(self.family, self.name, chain, expr, comment))

    def ruleset(self) -> Json:
        objects = [nj.table(self.family, self.name), *self.sets, *self.chains, *self.rules]
        digest = structure_digest({"nftables": objects})
        meta = [
            nj.chain(self.family, self.name, META_CHAIN),
            nj.rule(self.family, self.name, META_CHAIN, [nj.RETURN], f"{DIGEST_MARK}{digest}"),
        ]
        return {"nftables": objects + meta}


# --- tenant tables ---------------------------------------------------------------------------


def compile_tenant(
    policy: Policy,
    snapshot: Snapshot,
    node: str,
    tenant: str,
    ports: TenantPorts,
    *,
    now: datetime,
    conntrack: bool,
    resolver: Resolver | None = None,
) -> Json:
    """The bridge table enforcing ``policy`` on ``tenant``'s segment at ``node``."""
    with _quiet_gc():
        return _compile_tenant(policy, snapshot, node, tenant, ports, now, conntrack, resolver)


def _compile_tenant(
    policy: Policy,
    snapshot: Snapshot,
    node: str,
    tenant: str,
    ports: TenantPorts,
    now: datetime,
    conntrack: bool,
    resolver: Resolver | None,
) -> Json:
    resolver = resolver or Resolver(policy, snapshot)
    table = _Table("bridge", tenant_table(tenant), conntrack, _needs_intervals(snapshot))
    in_tenant = _tenant_addresses(snapshot, tenant)
    scoped = [(mark, c) for mark, c in enumerate(clauses(policy), 1) if _may_reach_tenant(policy, c, tenant)]
    _tenant_sets(table, snapshot, node, ports)
    _tenant_forward(table, tenant, scoped)
    _spoof_chain(table, tenant)
    _policy_chains(table, resolver, scoped, in_tenant, in_tenant, now)
    _tenant_drops(table, tenant, ports)
    return table.ruleset()


def _tenant_addresses(snapshot: Snapshot, tenant: str) -> Callable[[Members], list[str]]:
    def pick(members: Members) -> list[str]:
        workloads = snapshot.workloads
        return [
            a
            for k, n in members
            if k == "workload" and workloads[n].tenant == tenant
            for a in workloads[n].addresses
        ]

    return pick


def _may_reach_tenant(policy: Policy, clause: Clause, tenant: str) -> bool:
    """Statically (from the policy alone), whether the clause can name a workload of ``tenant``.

    Exact for services and tenant lists; anything membership-based may, so its
    sets exist (perhaps empty) and a later membership change is an element update.
    """
    if clause.service is not None:
        return policy.services[clause.service].tenant == tenant
    dst = clause.dst
    dynamic = dst.any or dst.users or dst.groups or dst.roles or dst.tags or dst.workloads
    return bool(dynamic) or tenant in dst.tenants


def _tenant_sets(table: _Table, snapshot: Snapshot, node: str, ports: TenantPorts) -> None:
    """Ports, and the addresses each local workload may send from: the directory is the
    authority on where a workload runs, so a port whose workload the snapshot places
    elsewhere (or does not know) binds nothing and all it sends is dropped as spoofed."""
    table.set("ztos_ports", "ifname", sorted({ports.vxlan, ports.gateway, *ports.workloads.values()}))
    table.set("ztos_wports", "ifname", sorted(ports.workloads.values()))
    for version in (4, 6):
        binds = sorted(
            (port, element)
            for name, port in ports.workloads.items()
            if name in snapshot.workloads and snapshot.workloads[name].node == node
            for element in table.addresses(snapshot.workloads[name].addresses, version)
        )
        table.set(f"ztos_bind{version}", ["ifname", IP[version][1]], [nj.concat(p, e) for p, e in binds])


def _tenant_forward(table: _Table, tenant: str, scoped: list[tuple[int, Clause]]) -> None:
    forward = table.chain("forward", hook="forward")
    iif = nj.meta("iifname")
    table.rule(forward, [nj.match(iif, "@ztos_ports", "!="), nj.ACCEPT], f"not tenant {tenant}")
    table.rule(
        forward, [nj.match(iif, "@ztos_wports"), nj.jump("ztos_spoof")], "sources bound to their ports"
    )
    table.rule(forward, [nj.match(nj.payload("ether", "type"), "arp"), nj.ACCEPT], "arp")
    table.rule(forward, [_neighbour_discovery(), nj.ACCEPT], "ipv6 neighbour discovery")
    _stateful_rules(table, forward, scoped)
    for version in (4, 6):
        table.rule(
            forward, [nj.match(nj.payload("ether", "type"), IP[version][0]), nj.jump(f"ztos_v{version}")]
        )
    table.rule(forward, [nj.jump("ztos_drop")])


def _neighbour_discovery() -> Json:
    return nj.match(nj.payload("icmpv6", "type"), {"set": ND_TYPES})


def _stateful_rules(table: _Table, chain: str, scoped: list[tuple[int, Clause]]) -> None:
    if not table.stateful:
        return
    state = nj.ct("state")
    if scoped:
        entries = [(mark, nj.jump(f"ztos_est_{c.key}")) for mark, c in scoped]
        table.rule(chain, [nj.match(state, "established", "in"), nj.vmap(nj.ct("mark"), entries)])
    table.rule(chain, [nj.match(state, "related", "in"), nj.COUNTER, nj.ACCEPT], "related to an allowed flow")
    table.rule(chain, [nj.match(state, "invalid", "in"), nj.COUNTER, nj.DROP], "invalid")


def _spoof_chain(table: _Table, tenant: str) -> None:
    spoof = table.chain("ztos_spoof")
    iif = nj.meta("iifname")
    arp = nj.concat(iif, nj.payload("arp", "saddr ip"))
    table.rule(spoof, [nj.match(nj.payload("ether", "type"), "arp"), nj.match(arp, "@ztos_bind4"), nj.RETURN])
    table.rule(spoof, [nj.match(nj.concat(iif, nj.payload("ip", "saddr")), "@ztos_bind4"), nj.RETURN])
    table.rule(spoof, [_neighbour_discovery(), nj.RETURN], "nd from link-local and unspecified sources")
    table.rule(spoof, [nj.match(nj.concat(iif, nj.payload("ip6", "saddr")), "@ztos_bind6"), nj.RETURN])
    table.rule(spoof, nj.log(f"ztos-spoof {tenant}: "))
    table.rule(spoof, [nj.COUNTER, nj.DROP], "ztos-spoof")


def _tenant_drops(table: _Table, tenant: str, ports: TenantPorts) -> None:
    drop = table.chain("ztos_drop")
    logs = [(ports.vxlan, "ztos_log_remote", "remote"), (ports.gateway, "ztos_log_gateway", "gateway")]
    logs += [(port, f"ztos_log_w_{name}", name) for name, port in sorted(ports.workloads.items())]
    table.rule(drop, [nj.vmap(nj.meta("iifname"), [(port, nj.jump(chain)) for port, chain, _ in logs])])
    table.rule(drop, [nj.COUNTER, nj.DROP], "ztos-drop")
    for _, chain, who in logs:
        table.chain(chain)
        table.rule(chain, nj.log(f"ztos-drop {tenant} {who}: "))
        table.rule(chain, [nj.COUNTER, nj.DROP], f"ztos-drop {who}")


# --- host table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPorts:
    """What ZTOS itself needs on a host; ``api`` is set where a controller listens."""

    wg_ifname: str = "ztos0"
    listen_port: int = 51820
    vxlan: int = 4789
    bgp: int = 179
    api: int | None = None
    mesh_ping: bool = True  # `ztos lab verify` and operators ping overlay addresses


def compile_host(
    policy: Policy,
    snapshot: Snapshot,
    node: str,
    *,
    now: datetime,
    ports: HostPorts | None = None,
    resolver: Resolver | None = None,
) -> Json:
    """The inet table enforcing ``policy`` on traffic to ``node`` over the mesh."""
    with _quiet_gc():
        return _compile_host(policy, snapshot, node, now, ports, resolver)


def _compile_host(
    policy: Policy,
    snapshot: Snapshot,
    node: str,
    now: datetime,
    ports: HostPorts | None,
    resolver: Resolver | None,
) -> Json:
    resolver = resolver or Resolver(policy, snapshot)
    ports = ports or HostPorts()
    table = _Table("inet", HOST_TABLE, stateful=True, intervals=_needs_intervals(snapshot))
    scoped = [(mark, c) for mark, c in enumerate(clauses(policy), 1) if _may_reach_nodes(c.dst)]
    mine = set(snapshot.nodes[node].addresses) if node in snapshot.nodes else set()
    every_node = [a for n in snapshot.nodes.values() for a in n.addresses]
    for version in (4, 6):
        table.set(f"ztos_nodes{version}", IP[version][1], table.addresses(every_node, version))
    _host_input(table, scoped, ports)
    _policy_chains(table, resolver, scoped, _node_addresses(snapshot), _own(snapshot, node, mine), now)
    drop = table.chain("ztos_drop")
    table.rule(drop, nj.log("ztos-drop host: "))
    table.rule(drop, [nj.COUNTER, nj.DROP], "ztos-drop host")
    return table.ruleset()


def _may_reach_nodes(dst: Selector) -> bool:
    return bool(dst.any or dst.nodes or dst.groups or dst.roles or dst.tags)


def _node_addresses(snapshot: Snapshot) -> Callable[[Members], list[str]]:
    def pick(members: Members) -> list[str]:
        return [a for k, n in members if k == "node" for a in snapshot.nodes[n].addresses]

    return pick


def _own(snapshot: Snapshot, node: str, mine: set[str]) -> Callable[[Members], list[str]]:
    def pick(members: Members) -> list[str]:
        return sorted(mine) if ("node", node) in members else []

    return pick


def _host_input(table: _Table, scoped: list[tuple[int, Clause]], ports: HostPorts) -> None:
    chain = table.chain("input", hook="input")
    iif, udp_dport, tcp_dport = nj.meta("iifname"), nj.payload("udp", "dport"), nj.payload("tcp", "dport")
    table.rule(chain, [nj.match(udp_dport, ports.listen_port), nj.ACCEPT], "wireguard")
    not_wg = nj.match(iif, ports.wg_ifname, "!=")
    table.rule(
        chain, [nj.match(udp_dport, ports.vxlan), not_wg, nj.COUNTER, nj.DROP], "vxlan only over wireguard"
    )
    table.rule(chain, [not_wg, nj.ACCEPT], "not overlay traffic")
    _stateful_rules(table, chain, scoped)
    state = nj.ct("state")
    opened = [nj.match(state, ["established", "related"], "in"), nj.match(nj.ct("mark"), 0), nj.ACCEPT]
    table.rule(chain, opened, "flows this host opened or built-ins allowed")
    table.rule(chain, [_neighbour_discovery(), nj.ACCEPT], "ipv6 neighbour discovery")
    for version in (4, 6):
        nodes = nj.match(nj.payload(IP[version][0], "saddr"), f"@ztos_nodes{version}")
        table.rule(chain, [nodes, nj.match(udp_dport, ports.vxlan), nj.ACCEPT], "vxlan between nodes")
        table.rule(chain, [nodes, nj.match(tcp_dport, ports.bgp), nj.ACCEPT], "bgp between nodes")
    if ports.mesh_ping:
        for version in (4, 6):
            nodes = nj.match(nj.payload(IP[version][0], "saddr"), f"@ztos_nodes{version}")
            echo = nj.match(nj.payload(IP[version][2], "type"), "echo-request")
            table.rule(chain, [nodes, echo, nj.ACCEPT], "ping between nodes (mesh checks)")
    if ports.api is not None:
        table.rule(chain, [nj.match(tcp_dport, ports.api), nj.ACCEPT], "controller api")
    for version, proto in ((4, "ipv4"), (6, "ipv6")):
        table.rule(chain, [nj.match(nj.meta("nfproto"), proto), nj.jump(f"ztos_v{version}")])
    table.rule(chain, [nj.jump("ztos_drop")])


# --- base table (always installed, policy or not) --------------------------------------------------


def compile_base(
    ports: HostPorts,
    overlay: Iterable[str],
    bgp_peers: Iterable[str] = (),
    vxlan_ports: Iterable[int] = (),
    mesh_prefixes: Iterable[str] = (),
) -> Json:
    """``table inet ztos-underlay``: the isolation that must not wait for a policy.

    Installed from agent start and never touched by policy applies. ZTOS's
    inter-host protocols (VXLAN, BGP) and the host's own overlay addresses are
    reachable only through the WireGuard interface: a VXLAN packet from the
    underlay would otherwise reach tenant workloads in clear and poison the
    learning FDB. It runs before ``ztos-host`` (lower priority) and only drops,
    so a drop here is final whatever later tables accept. ``bgp_peers`` are
    configured external BGP neighbours, which may sit on the underlay.

    Its forward chain keeps a host with forwarding on (a container or
    router host) from relaying the underlay into the mesh: a packet for any
    overlay address (``mesh_prefixes``) that did not arrive over WireGuard
    would otherwise leave through WireGuard and reach the other host as if a
    peer had sent it.
    """
    table = _Table("inet", BASE_TABLE, stateful=False, intervals=False)
    chain = "input"
    table.chains.append(nj.base_chain("inet", BASE_TABLE, chain, "input", BASE_PRIO))
    iif = nj.meta("iifname")
    not_wg = nj.match(iif, ports.wg_ifname, "!=")
    not_local = nj.match(iif, nj.anon([ports.wg_ifname, "lo"]), "!=")
    for version in (4, 6):
        own = table.addresses(overlay, version)
        if own:
            to_own = nj.match(nj.payload(IP[version][0], "daddr"), nj.anon(own))
            table.rule(chain, [not_local, to_own, nj.COUNTER, nj.DROP], "overlay only over wireguard")
    vxlan = nj.match(nj.payload("udp", "dport"), nj.anon(sorted({ports.vxlan, *vxlan_ports})))
    table.rule(chain, [vxlan, not_wg, nj.COUNTER, nj.DROP], "vxlan only over wireguard")
    for version in (4, 6):
        peers = table.addresses(bgp_peers, version)
        if peers:
            saddr = nj.payload(IP[version][0], "saddr")
            bgp = nj.match(nj.payload("tcp", "dport"), ports.bgp)
            table.rule(chain, [bgp, nj.match(saddr, nj.anon(peers)), nj.ACCEPT], "configured bgp peers")
    for field in ("dport", "sport"):
        bgp = nj.match(nj.payload("tcp", field), ports.bgp)
        table.rule(chain, [bgp, not_local, nj.COUNTER, nj.DROP], "bgp only over wireguard")
    _no_relay_into_mesh(table, not_wg, mesh_prefixes)
    return table.ruleset()


def _no_relay_into_mesh(table: _Table, not_wg: Json, mesh_prefixes: Iterable[str]) -> None:
    prefixes = list(mesh_prefixes)
    table.chains.append(nj.base_chain("inet", BASE_TABLE, "forward", "forward", BASE_PRIO))
    for version in (4, 6):
        mesh = nj.address_elements(prefixes, version, collapse=True)
        if mesh:
            to_mesh = nj.match(nj.payload(IP[version][0], "daddr"), nj.anon(mesh))
            rule = [not_wg, to_mesh, nj.COUNTER, nj.DROP]
            table.rule("forward", rule, "no relay from the underlay into the mesh")


def compile_gateway() -> Json:
    """``table inet ztos-gw`` in a tenant's gateway namespace: it answers ping and ND only.

    The gateway routes for its workloads but runs no service of its own, so
    anything else addressed to it is dropped (not rejected: a RST or port
    unreachable would tell a workload the gateway is there and listening).
    """
    table = _Table("inet", GATEWAY_TABLE, stateful=True, intervals=False)
    chain = table.chain("input", hook="input")
    table.rule(chain, [nj.match(nj.ct("state"), ["established", "related"], "in"), nj.ACCEPT], "replies")
    table.rule(chain, [nj.match(nj.meta("iifname"), "lo"), nj.ACCEPT], "loopback")
    table.rule(chain, [_neighbour_discovery(), nj.ACCEPT], "ipv6 neighbour discovery")
    for version in (4, 6):
        echo = nj.match(nj.payload(IP[version][2], "type"), "echo-request")
        table.rule(chain, [echo, nj.ACCEPT], "ping of the gateway")
    table.rule(chain, [nj.COUNTER, nj.DROP], "ztos-drop gateway: not a service of the gateway")
    return table.ruleset()


# --- policy rules (both kinds) ---------------------------------------------------------------------


def _policy_chains(
    table: _Table,
    resolver: Resolver,
    scoped: list[tuple[int, Clause]],
    pick_src: Callable[[Members], list[str]],
    pick_dst: Callable[[Members], list[str]],
    now: datetime,
) -> None:
    for version in (4, 6):
        table.chain(f"ztos_v{version}")
    stems: dict[str, str] = {}
    for mark, clause in scoped:
        src_key, dst_key = _side_key(clause, "src"), _side_key(clause, "dst")
        if src_key not in stems:
            stems[src_key] = f"ztos_r{clause.number}_src"
            _address_sets(table, stems[src_key], pick_src(resolver.sources(clause.rule, now)))
        if dst_key not in stems:
            stems[dst_key] = f"ztos_{clause.key}_dst"
            _address_sets(table, stems[dst_key], pick_dst(resolver.targets(clause, now)))
        _clause_rules(table, mark, clause, stems[src_key], stems[dst_key])


def _side_key(clause: Clause, side: str) -> str:
    """What a side's members depend on: selector, that side's conditions, time windows.

    Sides with equal keys share the sets of the first rule that has them (named
    after it): nft 1.0.6 takes time quadratic in the number of sets of a
    transaction (40,000 sets: minutes), and policies name the same groups and
    services in many rules.
    """
    rule = clause.rule
    selector = rule.source if side == "src" else clause.dst
    conditions = [c.model_dump_json() for c in attr_conditions(rule, side)]
    windows = [c.model_dump_json() for c in time_conditions(rule)]
    return json.dumps([side, selector.model_dump_json(), conditions, windows])


def _address_sets(table: _Table, stem: str, addresses: list[str]) -> None:
    for version in (4, 6):
        table.set(f"{stem}{version}", IP[version][1], table.addresses(addresses, version))


def _clause_rules(table: _Table, mark: int, clause: Clause, src_stem: str, dst_stem: str) -> None:
    comment = f"{clause.key} {clause.rule.name}"
    for version in (4, 6):
        proto = IP[version][0]
        src, dst = f"@{src_stem}{version}", f"@{dst_stem}{version}"
        forward = [nj.match(nj.payload(proto, "saddr"), src), nj.match(nj.payload(proto, "daddr"), dst)]
        backward = [nj.match(nj.payload(proto, "saddr"), dst), nj.match(nj.payload(proto, "daddr"), src)]
        for l4, replies in _port_groups(version, clause.ports):
            marking = [{"mangle": {"key": nj.ct("mark"), "value": mark}}] if table.stateful else []
            table.rule(f"ztos_v{version}", [*forward, *l4, nj.COUNTER, *marking, nj.ACCEPT], comment)
            for reply in [] if table.stateful else replies:
                table.rule(f"ztos_v{version}", [*backward, *reply, nj.COUNTER, nj.ACCEPT], f"{comment} reply")
        if table.stateful:
            _established_chain(table, clause, version, forward, backward)


def _established_chain(
    table: _Table, clause: Clause, version: int, forward: nj.Expr, backward: nj.Expr
) -> None:
    """Established packets of a flow clause M accepted: still allowed only while both ends are members."""
    name = f"ztos_est_{clause.key}"
    if version == 4:
        table.chain(name)
    direction = nj.ct("direction")
    table.rule(name, [nj.match(direction, "original"), *forward, nj.ACCEPT])
    table.rule(name, [nj.match(direction, "reply"), *backward, nj.ACCEPT])


def _port_groups(version: int, specs: Iterable[PortSpec]) -> list[tuple[nj.Expr, list[nj.Expr]]]:
    """Per protocol: the match for new flows and, for stateless mode, the replies."""
    icmp = IP[version][2]
    groups: list[tuple[nj.Expr, list[nj.Expr]]] = []
    by_proto: dict[str, list[PortSpec]] = {}
    for spec in specs:
        by_proto.setdefault(spec.proto, []).append(spec)
    for proto in ("tcp", "udp"):
        if proto in by_proto:
            numbers = nj.ports(by_proto[proto])
            reply = [nj.match(nj.payload(proto, "sport"), numbers)]
            groups.append(([nj.match(nj.payload(proto, "dport"), numbers)], [reply + _not_syn(proto)]))
    if "icmp" in by_proto:
        reply = [nj.match(nj.payload(icmp, "type"), "echo-reply")]
        groups.append(([nj.match(nj.payload(icmp, "type"), "echo-request")], [reply]))
    if "any" in by_proto:
        groups.append(([], [_not_syn("tcp"), [nj.match(nj.meta("l4proto"), "tcp", "!=")]]))
    return groups


def _not_syn(proto: str) -> nj.Expr:
    """A reply is never a bare SYN: the server side can answer but not open."""
    if proto != "tcp":
        return []
    flags = {"&": [nj.payload("tcp", "flags"), ["syn", "ack"]]}
    return [nj.match(flags, "syn", "!=")]


# --- digests and element diffs ---------------------------------------------------------------------


def structure_digest(ruleset: Json) -> str:
    """sha256 of everything but set elements (and the meta chain that carries this digest)."""
    skeleton = [_without_elements(obj) for obj in ruleset["nftables"] if not _is_meta(obj)]
    return hashlib.sha256(json.dumps(skeleton, sort_keys=True).encode()).hexdigest()


def ruleset_digest(ruleset: Json) -> str:
    """sha256 of the whole compiled ruleset, elements included."""
    return hashlib.sha256(json.dumps(ruleset, sort_keys=True).encode()).hexdigest()


def _carried_digest(ruleset: Json) -> str:
    """The digest the meta rule carries (computed at compile time), else computed now."""
    for obj in reversed(ruleset["nftables"]):
        comment = obj.get("rule", {}).get("comment", "")
        if obj.get("rule", {}).get("chain") == META_CHAIN and comment.startswith(DIGEST_MARK):
            return str(comment[len(DIGEST_MARK) :])
    return structure_digest(ruleset)


def _is_meta(obj: Json) -> bool:
    body = next(iter(obj.values()))
    return isinstance(body, dict) and META_CHAIN in (body.get("name"), body.get("chain"))


def _without_elements(obj: Json) -> Json:
    if "set" not in obj:
        return obj
    return {"set": {k: v for k, v in obj["set"].items() if k != "elem"}}


def diff_sets(old: Json, new: Json) -> list[Json] | None:
    """Element add/delete commands turning ``old`` into ``new``; None if more than sets changed."""
    if _carried_digest(old) != _carried_digest(new):
        return None
    before = {_set_key(s): s for s in _sets(old)}
    deletes: list[Json] = []
    adds: list[Json] = []
    for key, body in ((_set_key(s), s) for s in _sets(new)):
        was, now = _elements(before[key]), _elements(body)
        _element_command(deletes, "delete", body, [was[k] for k in sorted(was.keys() - now.keys())])
        _element_command(adds, "add", body, [now[k] for k in sorted(now.keys() - was.keys())])
    return deletes + adds


def _sets(ruleset: Json) -> list[Json]:
    return [obj["set"] for obj in ruleset["nftables"] if "set" in obj]


def _set_key(body: Json) -> tuple[str, str, str]:
    return body["family"], body["table"], body["name"]


def _elements(body: Json) -> dict[str, Any]:
    return {json.dumps(e, sort_keys=True): e for e in body.get("elem", [])}


def _element_command(commands: list[Json], verb: str, body: Json, elements: list[Any]) -> None:
    if elements:
        target = {"family": body["family"], "table": body["table"], "name": body["name"], "elem": elements}
        commands.append({verb: {"element": target}})
