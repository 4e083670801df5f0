"""The tenant planner: ``plan_tenants(desired, observed) -> [Operation]``, pure.

What a host has for its tenants (``ObservedTenants``: VXLAN devices with
their flood lists, bridges, the host ends of the gateway and workload veths,
the tenant and workload namespaces) is diffed against ``TenantsSpec``. No I/O
happens here, so fresh hosts, drift, detached tenants and foreign objects are
all table tests; ``tenant_reconcile`` observes and applies.

Operations are coarse and idempotent: ``EnsureGateway`` means "make the
whole gateway right" (namespace, veth pair, MAC, addresses, bridge port,
pinned FDB entry), and lists what it found wrong only to print it. The
executor always runs the full, idempotent ensure, so a plan stays correct
even when the host changed a little between observing and applying.

Order, fixed so plans are stable and readable:

1. leftovers (ZTOS-named objects nobody wants: detached tenants, removed
   workloads): first, because they hold names and VNIs new objects need;
2. per tenant, by name: bridge, VXLAN (delete first when its identity -
   VNI, local VTEP, learning, port - changed: those are fixed at creation),
   gateway, flood entries (additions before removals), managed workloads;
3. unmanaged workloads last: their namespace belongs to someone else and may
   not exist yet; that failure must not hold back the rest of the plan.

Anycast gateway: every host gives gw0 the same MAC and addresses, so its
frames must never cross the VXLAN. The gateway's bridge port and the VXLAN
port are both *isolated* (``bridge link set … isolated on``): the kernel
forwards nothing between two isolated ports, in either direction, while
workload ports (not isolated) reach both. Remote bridges never see (and so
never learn) the gateway MAC, and a remote workload's ARP/ND for the gateway
address is answered by its own host's gateway only. The gateway MAC is also
pinned to its port with a static, sticky FDB entry.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from ztos.dataplane.tenant_state import (
    GATEWAY_IFNAME,
    WORKLOAD_IFNAME,
    TenantSpec,
    TenantsSpec,
    WorkloadSpec,
    device_names,
    owned_netns,
)
from ztos.errors import InvalidInput

FLOOD_MAC = "00:00:00:00:00:00"
VXLAN_OVERHEAD_IPV6 = 70  # outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14
VXLAN_OVERHEAD_IPV4 = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
IPV6_MIN_MTU = 1280
MARK_WORD = "ztos"


def tenant_mtu(wg_mtu: int, ipv6_vtep: bool) -> int:
    """The tenant MTU for VXLAN inside a WireGuard interface of ``wg_mtu``.

    Never below 1280 (tenants carry IPv6); below that the VXLAN packets are
    fragmented by the sending host, which is slower but still works.
    """
    if wg_mtu < IPV6_MIN_MTU:
        raise InvalidInput(f"WireGuard MTU {wg_mtu} is below the IPv6 minimum {IPV6_MIN_MTU}")
    overhead = VXLAN_OVERHEAD_IPV6 if ipv6_vtep else VXLAN_OVERHEAD_IPV4
    return max(IPV6_MIN_MTU, wg_mtu - overhead)


# --- ownership marks (link aliases) ----------------------------------------------


@dataclass(frozen=True)
class Mark:
    """Which tenant (and workload) a link belongs to, read from its alias.

    Names prove ownership (the prefixes); the mark only tells which tenant
    a leftover belonged to, so a detach plan can say what it removes.
    """

    tenant: str
    workload: str | None = None

    def __str__(self) -> str:
        text = f"{MARK_WORD} tenant={self.tenant}"
        return text if self.workload is None else f"{text} workload={self.workload}"


def parse_mark(alias: str | None) -> Mark | None:
    """``"ztos tenant=a workload=w1"`` -> ``Mark("a", "w1")``; anything else -> None."""
    words = (alias or "").split()
    if not words or words[0] != MARK_WORD:
        return None
    fields = dict(word.partition("=")[::2] for word in words[1:])
    tenant = fields.get("tenant")
    return Mark(tenant, fields.get("workload") or None) if tenant else None


# --- observed state ----------------------------------------------------------------


@dataclass(frozen=True)
class PortFlags:
    """Bridge-port flags of a link enslaved to a tenant bridge."""

    learning: bool = True
    neigh_suppress: bool = False
    isolated: bool = False


@dataclass(frozen=True)
class ObservedVxlan:
    """A VXLAN device in the host namespace; ``flood`` lists the remotes of its
    ``00:00:00:00:00:00`` entries (head-end replication), ``port`` its bridge-port flags."""

    name: str
    vni: int
    local: str | None
    learning: bool
    dstport: int
    mtu: int
    up: bool = True
    master: str | None = None
    port: PortFlags | None = None
    ipv6: bool = False
    alias: str | None = None
    flood: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedBridge:
    """A bridge in the host namespace; ``addresses`` would give the host a leg in the tenant."""

    name: str
    mtu: int
    up: bool = True
    ipv6: bool = False
    addresses: tuple[str, ...] = ()
    alias: str | None = None


@dataclass(frozen=True)
class ObservedVeth:
    """The host end of a gateway or workload veth; ``pinned`` are the MACs with a
    static sticky FDB entry on this port."""

    name: str
    index: int
    peer_index: int | None
    mtu: int
    up: bool = True
    master: str | None = None
    port: PortFlags | None = None
    ipv6: bool = False
    alias: str | None = None
    pinned: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedLink:
    """A ZTOS-named host link of a kind its name does not call for."""

    name: str
    kind: str | None
    alias: str | None = None


@dataclass(frozen=True)
class ObservedNsLink:
    """A link inside a tenant or workload namespace (``gw0``, ``eth0``, …);
    ``gateways`` are the next hops of its ZTOS default routes."""

    name: str
    index: int
    kind: str | None
    peer_index: int | None
    mac: str | None
    mtu: int
    up: bool = True
    addresses: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    alias: str | None = None


@dataclass(frozen=True)
class ObservedNamespace:
    """A tenant or workload namespace; ``forwarding`` is IPv4 and IPv6 forwarding on."""

    name: str
    links: tuple[ObservedNsLink, ...] = ()
    forwarding: bool = False
    lo_up: bool = True

    def link(self, name: str) -> ObservedNsLink | None:
        return next((link for link in self.links if link.name == name), None)

    @property
    def mark(self) -> Mark | None:
        marks = (parse_mark(link.alias) for link in sorted(self.links, key=lambda link: link.name))
        return next((mark for mark in marks if mark is not None), None)


@dataclass(frozen=True)
class ObservedTenants:
    """Everything of ZTOS's tenant data plane on one host, plus the unmanaged
    workload namespaces the spec names (those that exist)."""

    vxlans: tuple[ObservedVxlan, ...] = ()
    bridges: tuple[ObservedBridge, ...] = ()
    veths: tuple[ObservedVeth, ...] = ()
    others: tuple[ObservedLink, ...] = ()
    namespaces: tuple[ObservedNamespace, ...] = ()

    def vxlan(self, name: str) -> ObservedVxlan | None:
        return next((v for v in self.vxlans if v.name == name), None)

    def bridge(self, name: str) -> ObservedBridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def veth(self, name: str) -> ObservedVeth | None:
        return next((v for v in self.veths if v.name == name), None)

    def namespace(self, name: str) -> ObservedNamespace | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def links(self) -> tuple[tuple[str, str | None, str | None], ...]:
        """``(name, kind, alias)`` of every host link observed."""
        return (
            *((v.name, "vxlan", v.alias) for v in self.vxlans),
            *((b.name, "bridge", b.alias) for b in self.bridges),
            *((v.name, "veth", v.alias) for v in self.veths),
            *((o.name, o.kind, o.alias) for o in self.others),
        )


# --- operations --------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureBridge:
    tenant: TenantSpec
    new: bool
    changes: tuple[str, ...] = ()

    def __str__(self) -> str:
        t = self.tenant
        if self.new:
            return f"+ tenant {t.name} vni {t.vni}: bridge {t.bridge} mtu {t.mtu}"
        return f"~ tenant {t.name}: bridge {t.bridge} (fix: {', '.join(self.changes)})"


@dataclass(frozen=True)
class DeleteVxlan:
    tenant: str
    vxlan: str
    reason: str

    def __str__(self) -> str:
        return f"- tenant {self.tenant}: vxlan {self.vxlan} (recreate: {self.reason})"


@dataclass(frozen=True)
class EnsureVxlan:
    tenant: TenantSpec
    new: bool
    changes: tuple[str, ...] = ()

    def __str__(self) -> str:
        t = self.tenant
        if not self.new:
            return f"~ tenant {t.name}: vxlan {t.vxlan} (fix: {', '.join(self.changes)})"
        mode = "evpn: no learning, neigh_suppress" if t.evpn else "learning" if t.learning else "no learning"
        return (
            f"+ tenant {t.name} vni {t.vni}: vxlan {t.vxlan} local {_ip(t.local_vtep)} "
            f"dstport {t.dstport} ({mode}) on {t.bridge}"
        )


@dataclass(frozen=True)
class EnsureGateway:
    """``replace``: a veth end exists but is not paired as wanted; delete both ends first."""

    tenant: TenantSpec
    new: bool
    changes: tuple[str, ...] = ()
    replace: bool = False

    def __str__(self) -> str:
        t = self.tenant
        head = f"tenant {t.name}: gateway {t.gateway_port} <-> {t.vrf_netns}/{GATEWAY_IFNAME}"
        if self.new:
            return f"+ {head} {t.gateway_mac.lower()} ({_cidr_list(t.gateway_addresses)})"
        return f"~ {head} (fix: {', '.join(self.changes)})"


@dataclass(frozen=True)
class AddFlood:
    tenant: str
    vxlan: str
    remote: str

    def __str__(self) -> str:
        return f"+ flood {self.vxlan} -> {self.remote}"


@dataclass(frozen=True)
class RemoveFlood:
    tenant: str
    vxlan: str
    remote: str

    def __str__(self) -> str:
        return f"- flood {self.vxlan} -> {self.remote}"


@dataclass(frozen=True)
class EnsureWorkload:
    tenant: TenantSpec
    workload: WorkloadSpec
    new: bool
    changes: tuple[str, ...] = ()
    replace: bool = False

    def __str__(self) -> str:
        w = self.workload
        if self.new:
            return f"+ workload {w.name} in {w.netns} ({_cidr_list(w.addresses)})"
        return f"~ workload {w.name} in {w.netns} (fix: {', '.join(self.changes)})"


@dataclass(frozen=True)
class Leftover:
    """One ZTOS-named object to remove; ``kind`` is vxlan, bridge, gateway, port, link or netns."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class RemoveLeftovers:
    """Remove ``items`` (links first, then namespaces) that belonged to ``owner``."""

    owner: str
    reason: str
    items: tuple[Leftover, ...]

    def __str__(self) -> str:
        return f"- {self.owner} ({self.reason}): {', '.join(str(item) for item in self.items)}"


TenantOperation: TypeAlias = (
    EnsureBridge
    | DeleteVxlan
    | EnsureVxlan
    | EnsureGateway
    | AddFlood
    | RemoveFlood
    | EnsureWorkload
    | RemoveLeftovers
)


# --- the planner ---------------------------------------------------------------------


def plan_tenants(desired: TenantsSpec, observed: ObservedTenants) -> list[TenantOperation]:
    """The operations that turn ``observed`` into ``desired``; ``[]`` when converged."""
    ops: list[TenantOperation] = list(leftover_ops(desired, observed))
    later: list[TenantOperation] = []
    for tenant in sorted(desired.tenants, key=lambda t: t.name):
        ops.extend(_tenant_ops(tenant, observed))
        for workload in sorted(tenant.workloads, key=lambda w: w.name):
            (ops if workload.managed else later).extend(_workload_ops(tenant, workload, observed))
    return [*ops, *later]


def _tenant_ops(t: TenantSpec, observed: ObservedTenants) -> list[TenantOperation]:
    vxlan = observed.vxlan(t.vxlan)
    reason = vxlan_identity_change(t, vxlan) if vxlan else ""
    ops: list[TenantOperation] = [*_bridge_ops(t, observed.bridge(t.bridge))]
    if vxlan is not None and reason:
        ops.append(DeleteVxlan(t.name, t.vxlan, reason))
        vxlan = None
    ops.extend(_vxlan_ops(t, vxlan))
    ops.extend(_gateway_ops(t, observed))
    ops.extend(_flood_ops(t, vxlan))
    return ops


def _bridge_ops(t: TenantSpec, bridge: ObservedBridge | None) -> list[TenantOperation]:
    if bridge is None:
        return [EnsureBridge(t, new=True)]
    changes = bridge_changes(t, bridge)
    return [EnsureBridge(t, new=False, changes=changes)] if changes else []


def _vxlan_ops(t: TenantSpec, vxlan: ObservedVxlan | None) -> list[TenantOperation]:
    if vxlan is None:
        return [EnsureVxlan(t, new=True)]
    changes = vxlan_changes(t, vxlan)
    return [EnsureVxlan(t, new=False, changes=changes)] if changes else []


def _gateway_ops(t: TenantSpec, observed: ObservedTenants) -> list[TenantOperation]:
    namespace = observed.namespace(t.vrf_netns)
    port = observed.veth(t.gateway_port)
    inner = namespace.link(GATEWAY_IFNAME) if namespace else None
    if port is None and inner is None:
        return [EnsureGateway(t, new=True)]
    changes = [*namespace_changes(namespace, router=True), *gateway_changes(t, port, inner)]
    replace = "veth" in changes and (port is not None or inner is not None)
    return [EnsureGateway(t, new=False, changes=tuple(changes), replace=replace)] if changes else []


def _flood_ops(t: TenantSpec, vxlan: ObservedVxlan | None) -> list[TenantOperation]:
    if t.flood is None:
        return []  # EVPN: the flood list is FRR's (type-3 routes)
    want = {_ip(remote) for remote in t.flood}
    have = {_ip(remote) for remote in vxlan.flood} if vxlan else set()
    return [
        *(AddFlood(t.name, t.vxlan, remote) for remote in sorted(want - have, key=_ip_order)),
        *(RemoveFlood(t.name, t.vxlan, remote) for remote in sorted(have - want, key=_ip_order)),
    ]


def _workload_ops(t: TenantSpec, w: WorkloadSpec, observed: ObservedTenants) -> list[TenantOperation]:
    namespace = observed.namespace(w.netns)
    port = observed.veth(w.host_port)
    inner = namespace.link(WORKLOAD_IFNAME) if namespace else None
    if port is None and inner is None:
        return [EnsureWorkload(t, w, new=True)]
    changes = [*namespace_changes(namespace, router=False), *workload_changes(t, w, port, inner)]
    replace = "veth" in changes and (port is not None or inner is not None)
    return [EnsureWorkload(t, w, new=False, changes=tuple(changes), replace=replace)] if changes else []


# --- what differs (each returns printable change names) ------------------------------


def vxlan_identity_change(t: TenantSpec, vxlan: ObservedVxlan) -> str:
    """Why the device must be recreated ('' when it need not): these are fixed at creation."""
    reasons = []
    if vxlan.vni != t.vni:
        reasons.append(f"vni {vxlan.vni} -> {t.vni}")
    if vxlan.local is None or _ip(vxlan.local) != _ip(t.local_vtep):
        reasons.append(f"local {vxlan.local or '-'} -> {_ip(t.local_vtep)}")
    if vxlan.learning != t.learning:
        reasons.append(f"learning {_on(vxlan.learning)} -> {_on(t.learning)}")
    if vxlan.dstport != t.dstport:
        reasons.append(f"dstport {vxlan.dstport} -> {t.dstport}")
    return ", ".join(reasons)


def vxlan_port_flags(t: TenantSpec) -> PortFlags:
    """Isolated (anycast gateway); in EVPN mode FRR wants no learning and ARP/ND suppression."""
    return PortFlags(learning=not t.evpn, neigh_suppress=t.evpn, isolated=True)


GATEWAY_PORT_FLAGS = PortFlags(learning=True, neigh_suppress=False, isolated=True)
WORKLOAD_PORT_FLAGS = PortFlags(learning=True, neigh_suppress=False, isolated=False)


def bridge_changes(t: TenantSpec, bridge: ObservedBridge) -> tuple[str, ...]:
    return _flags(
        (f"mtu {bridge.mtu} -> {t.mtu}", bridge.mtu != t.mtu),
        ("up", not bridge.up),
        ("ipv6", bridge.ipv6),
        ("addresses", bool(bridge.addresses)),
        ("mark", parse_mark(bridge.alias) != Mark(t.name)),
    )


def vxlan_changes(t: TenantSpec, vxlan: ObservedVxlan) -> tuple[str, ...]:
    return _flags(
        (f"mtu {vxlan.mtu} -> {t.mtu}", vxlan.mtu != t.mtu),
        ("master", vxlan.master != t.bridge),
        ("port flags", vxlan.port != vxlan_port_flags(t)),
        ("up", not vxlan.up),
        ("ipv6", vxlan.ipv6),
        ("mark", parse_mark(vxlan.alias) != Mark(t.name)),
    )


def namespace_changes(namespace: ObservedNamespace | None, *, router: bool) -> tuple[str, ...]:
    if namespace is None:
        return ("netns",)
    return _flags(("lo", not namespace.lo_up), ("forwarding", router and not namespace.forwarding))


def gateway_changes(
    t: TenantSpec, port: ObservedVeth | None, inner: ObservedNsLink | None
) -> tuple[str, ...]:
    if port is None or inner is None or not paired(port, inner):
        return ("veth",)
    mark = Mark(t.name)
    return (
        *host_port_changes(port, t.bridge, t.mtu, GATEWAY_PORT_FLAGS, mark),
        *_flags(("fdb", set(port.pinned) != {t.gateway_mac.lower()})),
        *inner_changes(inner, t.gateway_mac, t.mtu, t.gateway_addresses, (), mark),
    )


def workload_changes(
    t: TenantSpec, w: WorkloadSpec, port: ObservedVeth | None, inner: ObservedNsLink | None
) -> tuple[str, ...]:
    if port is None or inner is None or not paired(port, inner):
        return ("veth",)
    mark = Mark(t.name, w.name)
    return (
        *host_port_changes(port, t.bridge, t.mtu, WORKLOAD_PORT_FLAGS, mark),
        *inner_changes(inner, w.mac, t.mtu, w.addresses, w.gateways, mark),
    )


def host_port_changes(
    port: ObservedVeth, bridge: str, mtu: int, flags: PortFlags, mark: Mark
) -> tuple[str, ...]:
    return _flags(
        ("port mtu", port.mtu != mtu),
        ("port master", port.master != bridge),
        ("port flags", port.port != flags),
        ("port up", not port.up),
        ("port ipv6", port.ipv6),
        ("port mark", parse_mark(port.alias) != mark),
    )


def inner_changes(
    link: ObservedNsLink,
    mac: str,
    mtu: int,
    addresses: tuple[str, ...],
    gateways: tuple[str, ...],
    mark: Mark,
) -> tuple[str, ...]:
    return _flags(
        ("mac", (link.mac or "").lower() != mac.lower()),
        ("mtu", link.mtu != mtu),
        ("up", not link.up),
        ("addresses", _cidrs(link.addresses) != _cidrs(addresses)),
        ("routes", _ips(link.gateways) != _ips(gateways)),
        ("mark", parse_mark(link.alias) != mark),
    )


def paired(port: ObservedVeth, inner: ObservedNsLink) -> bool:
    """The two ends are one veth pair (each names the other's index as its peer)."""
    return inner.kind == "veth" and port.peer_index == inner.index and inner.peer_index == port.index


# --- leftovers -----------------------------------------------------------------------


def leftover_ops(desired: TenantsSpec, observed: ObservedTenants) -> list[RemoveLeftovers]:
    """Group ZTOS-named objects nobody wants by the tenant/workload their mark names."""
    tenants = {t.name for t in desired.tenants}
    groups: dict[Mark | None, list[Leftover]] = defaultdict(list)
    for mark, item in _leftovers(desired, observed):
        detached = mark is not None and mark.tenant not in tenants
        groups[Mark(mark.tenant) if mark and detached else mark].append(item)
    ops = [_removal(mark, items, tenants) for mark, items in groups.items()]
    return sorted(ops, key=lambda op: (op.owner.startswith("unmarked"), op.owner))


def _leftovers(desired: TenantsSpec, observed: ObservedTenants) -> Iterable[tuple[Mark | None, Leftover]]:
    kinds = {name: kind for t in desired.tenants for name, kind in _desired_kinds(t)}
    for name, kind, alias in observed.links():
        if desired.device_owned(name) and kinds.get(name) != kind:
            yield parse_mark(alias), Leftover(_leftover_kind(name, kind, desired), name)
    wanted = {netns for t in desired.tenants for netns in owned_netns(t)}
    for namespace in observed.namespaces:
        if desired.netns_owned(namespace.name) and namespace.name not in wanted:
            yield namespace.mark, Leftover("netns", namespace.name)


def _desired_kinds(t: TenantSpec) -> Iterable[tuple[str, str]]:
    kinds = {"v": "vxlan", "b": "bridge", "g": "veth", "w": "veth"}
    return ((name, kinds[letter]) for name, letter in device_names(t))


def _leftover_kind(name: str, kind: str | None, desired: TenantsSpec) -> str:
    if kind in ("vxlan", "bridge"):
        return kind
    if kind == "veth":
        return "gateway" if name.startswith(desired.device_prefix + "g") else "port"
    return "link"


_REMOVAL_ORDER = {"port": 0, "gateway": 1, "link": 2, "vxlan": 3, "bridge": 4, "netns": 5}


def _removal(mark: Mark | None, items: list[Leftover], tenants: set[str]) -> RemoveLeftovers:
    ordered = tuple(sorted(items, key=lambda i: (_REMOVAL_ORDER[i.kind], i.name)))
    if mark is None:
        return RemoveLeftovers("unmarked objects", "ZTOS-named, not desired", ordered)
    if mark.tenant not in tenants:
        return RemoveLeftovers(f"tenant {mark.tenant}", "detached", ordered)
    if mark.workload is not None:
        return RemoveLeftovers(f"workload {mark.workload} of tenant {mark.tenant}", "not desired", ordered)
    return RemoveLeftovers(f"tenant {mark.tenant}", "stale", ordered)


# --- normalisation -------------------------------------------------------------------


def _flags(*pairs: tuple[str, bool]) -> tuple[str, ...]:
    return tuple(name for name, wrong in pairs if wrong)


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


def _ips(values: Iterable[str]) -> frozenset[str]:
    return frozenset(str(ipaddress.ip_interface(v).ip) for v in values)


def _cidrs(values: Iterable[str]) -> frozenset[str]:
    return frozenset(str(ipaddress.ip_interface(v)) for v in values)


def _cidr_list(values: Iterable[str]) -> str:
    return ", ".join(sorted(_cidrs(values), key=_ip_order)) or "no addresses"


def _ip_order(value: str) -> tuple[int, int]:
    iface = ipaddress.ip_interface(value)
    return iface.version, int(iface.ip)


def _on(value: bool) -> str:
    return "on" if value else "off"
