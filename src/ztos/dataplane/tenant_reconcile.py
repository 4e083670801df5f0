"""Observe, plan, apply: the tenant reconciler and its executors.

``reconcile_tenants(desired)`` reads the host (``observe_tenants``), asks the
pure planner (``tenant_plan``) for the difference and hands it to an
executor, exactly like the WireGuard reconciler. ``TenantHostExecutor``
applies each operation through the netlink adapter (``links``) with
idempotent "ensure" steps; the first failing step stops the pass with
``TenantStepFailed`` and the next pass plans again from what is really there.
``TenantRecordingExecutor`` only records: the dry run behind ``agent plan``.

Everything goes through netlink (pyroute2 in ``links``), not ``ip``/``bridge``
commands: VXLAN, veth, bridge-port flags and FDB entries are all plain
netlink requests, one dump reads back the whole host, and kernel errors keep
their errno; one adapter instead of two parsers of ``-j`` output.

``netns`` is the host's namespace (``None``: the caller's, as for an agent
started inside it); tenant and workload namespaces are named in the spec.
Detaching a tenant is reconciling without it: its ZTOS-named objects are
leftovers and go, nothing else does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from ztos.dataplane import links
from ztos.dataplane.reconcile import StepFailed
from ztos.dataplane.tenant_plan import (
    FLOOD_MAC,
    GATEWAY_PORT_FLAGS,
    WORKLOAD_PORT_FLAGS,
    AddFlood,
    DeleteVxlan,
    EnsureBridge,
    EnsureGateway,
    EnsureVxlan,
    EnsureWorkload,
    Mark,
    ObservedBridge,
    ObservedLink,
    ObservedNamespace,
    ObservedNsLink,
    ObservedTenants,
    ObservedVeth,
    ObservedVxlan,
    PortFlags,
    RemoveFlood,
    RemoveLeftovers,
    TenantOperation,
    plan_tenants,
    vxlan_port_flags,
)
from ztos.dataplane.tenant_state import GATEWAY_IFNAME, WORKLOAD_IFNAME, TenantSpec, TenantsSpec
from ztos.errors import NotFound, ZtosError

_Apply = Callable[[str], None]
_Key = Callable[[str], str]


class TenantStepFailed(StepFailed):
    """One step of a tenant plan failed (same message and retry rule as the WireGuard planner's)."""


class TenantExecutor(Protocol):
    """Applies a tenant plan, in order, once."""

    def apply(self, operations: Sequence[TenantOperation]) -> None: ...


class TenantRecordingExecutor:
    """Records plans instead of applying them: a dry run with the real code path."""

    def __init__(self) -> None:
        self.operations: list[TenantOperation] = []

    def apply(self, operations: Sequence[TenantOperation]) -> None:
        self.operations.extend(operations)


class TenantHostExecutor:
    """Applies tenant operations to this host through the netlink adapter."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def apply(self, operations: Sequence[TenantOperation]) -> None:
        for index, operation in enumerate(operations):
            try:
                self.apply_one(operation)
            except ZtosError as exc:
                raise TenantStepFailed(operation, operations[:index], exc) from exc

    def apply_one(self, op: TenantOperation) -> None:
        match op:
            case EnsureBridge():
                self._ensure_bridge(op.tenant)
            case DeleteVxlan():
                links.delete_link(op.vxlan, self.netns)
            case EnsureVxlan():
                self._ensure_vxlan(op.tenant)
            case EnsureGateway():
                self._ensure_gateway(op)
            case AddFlood():
                links.fdb_append(op.vxlan, FLOOD_MAC, op.remote, self.netns)
            case RemoveFlood():
                links.fdb_delete(op.vxlan, FLOOD_MAC, op.remote, self.netns)
            case EnsureWorkload():
                self._ensure_workload(op)
            case RemoveLeftovers():
                self._remove(op)

    def _ensure_bridge(self, t: TenantSpec) -> None:
        links.create_bridge(t.bridge, self.netns, up=False)
        self._host_link(t.bridge, t.mtu, Mark(t.name))
        for cidr in links.get_addresses(t.bridge, self.netns):
            links.remove_address(t.bridge, cidr, self.netns)
        links.set_link(t.bridge, self.netns, up=True)

    def _ensure_vxlan(self, t: TenantSpec) -> None:
        links.create_vxlan(
            t.vxlan, t.vni, t.local_vtep, learning=t.learning, port=t.dstport, netns=self.netns
        )
        self._host_link(t.vxlan, t.mtu, Mark(t.name))
        self._enslave(t.vxlan, t.bridge, vxlan_port_flags(t))

    def _ensure_gateway(self, op: EnsureGateway) -> None:
        t, mark = op.tenant, Mark(op.tenant.name)
        links.create_netns(t.vrf_netns)
        links.set_sysctl("net.ipv4.ip_forward", 1, t.vrf_netns)
        links.set_sysctl("net.ipv6.conf.all.forwarding", 1, t.vrf_netns)
        if op.replace:
            self._unplug(t.gateway_port, GATEWAY_IFNAME, t.vrf_netns)
        links.create_veth(t.gateway_port, GATEWAY_IFNAME, netns=self.netns, peer_netns=t.vrf_netns)
        self._host_link(t.gateway_port, t.mtu, mark)
        self._enslave(t.gateway_port, t.bridge, GATEWAY_PORT_FLAGS)
        self._pin(t.gateway_port, t.gateway_mac.lower())
        _configure_inner(GATEWAY_IFNAME, t.vrf_netns, t.gateway_mac, t.mtu, t.gateway_addresses, (), mark)

    def _ensure_workload(self, op: EnsureWorkload) -> None:
        t, w, mark = op.tenant, op.workload, Mark(op.tenant.name, op.workload.name)
        if w.managed:
            links.create_netns(w.netns)
        elif not links.netns_exists(w.netns):
            raise NotFound(f"workload {w.name}: namespace {w.netns} does not exist (its owner creates it)")
        if op.replace:
            # A foreign eth0 in someone else's namespace is theirs: only a managed one is replaced.
            self._unplug(w.host_port, WORKLOAD_IFNAME if w.managed else None, w.netns)
        links.create_veth(w.host_port, WORKLOAD_IFNAME, netns=self.netns, peer_netns=w.netns)
        self._host_link(w.host_port, t.mtu, mark)
        self._enslave(w.host_port, t.bridge, WORKLOAD_PORT_FLAGS)
        _configure_inner(WORKLOAD_IFNAME, w.netns, w.mac, t.mtu, w.addresses, w.gateways, mark)

    def _remove(self, op: RemoveLeftovers) -> None:
        for item in op.items:
            if item.kind == "netns":
                links.delete_netns(item.name)
            else:
                links.delete_link(item.name, self.netns)

    def _host_link(self, name: str, mtu: int, mark: Mark) -> None:
        """No IPv6 on host-side tenant links: the host must get no address (not even a
        link-local, with its DAD and MLD frames) on a tenant segment."""
        links.set_ipv6(name, False, self.netns)
        links.set_link(name, self.netns, mtu=mtu, alias=str(mark))

    def _enslave(self, name: str, bridge: str, flags: PortFlags) -> None:
        links.set_master(name, bridge, self.netns)
        links.set_bridge_port(
            name,
            self.netns,
            learning=flags.learning,
            neigh_suppress=flags.neigh_suppress,
            isolated=flags.isolated,
        )
        links.set_link(name, self.netns, up=True)

    def _pin(self, port: str, mac: str) -> None:
        """Exactly one pinned MAC on the gateway port: a changed gateway MAC leaves no stale pin."""
        links.add_static_fdb(port, mac, self.netns)
        for entry in links.list_fdb(self.netns):
            if entry.ifname == port and entry.master and entry.state == "static" and entry.mac != mac:
                links.remove_static_fdb(port, entry.mac, self.netns)

    def _unplug(self, port: str, inner: str | None, inner_netns: str) -> None:
        links.delete_link(port, self.netns)
        if inner is not None and links.netns_exists(inner_netns):
            links.delete_link(inner, inner_netns)


def _configure_inner(
    name: str,
    netns: str,
    mac: str,
    mtu: int,
    addresses: tuple[str, ...],
    gateways: tuple[str, ...],
    mark: Mark,
) -> None:
    """MAC, MTU, mark, up, then exactly ``addresses`` and default routes via ``gateways``.

    Up comes before the routes: the kernel refuses a next hop on a down link.
    """
    links.set_link(name, netns, mac=mac.lower(), mtu=mtu, alias=str(mark))
    links.set_link(name, netns, up=True)
    _sync(
        links.get_addresses(name, netns),
        addresses,
        add=lambda cidr: links.add_address(name, cidr, netns),
        remove=lambda cidr: links.remove_address(name, cidr, netns),
        key=_cidr,
    )
    have = tuple(gateway for link, gateway in links.default_gateways(netns) if link == name)
    _sync(
        have,
        gateways,
        add=lambda gateway: links.add_default_route(name, gateway, netns),
        remove=lambda gateway: links.remove_default_route(name, gateway, netns),
        key=_address,
    )


def _sync(have: Iterable[str], want: Iterable[str], *, add: _Apply, remove: _Apply, key: _Key) -> None:
    """Add what is missing, then remove what is extra (a link never lacks an address between)."""
    have_keys = {key(value): value for value in have}
    want_keys = {key(value): value for value in want}
    for missing in sorted(want_keys.keys() - have_keys.keys()):
        add(want_keys[missing])
    for extra in sorted(have_keys.keys() - want_keys.keys()):
        remove(have_keys[extra])


def _cidr(value: str) -> str:
    return str(ipaddress.ip_interface(value))


def _address(value: str) -> str:
    return str(ipaddress.ip_interface(value).ip)


# --- observing -----------------------------------------------------------------------


def observe_tenants(spec: TenantsSpec, netns: str | None = None) -> ObservedTenants:
    """Read ZTOS's tenant objects from the host: links named with ``spec.device_prefix``
    (+ v/b/g/w) in ``netns``, namespaces named with ``spec.netns_prefix``, and the
    unmanaged workload namespaces ``spec`` names. Nothing else is read."""
    all_links = links.list_links(netns)
    owned = [link for link in all_links if spec.device_owned(link.name)]
    host = _observe_host_links(owned, {link.index: link.name for link in all_links}, netns)
    return replace(host, namespaces=_observe_namespaces(spec, netns))


_HostLink = ObservedVxlan | ObservedBridge | ObservedVeth | ObservedLink


def _observe_host_links(
    owned: Sequence[links.LinkInfo], names: dict[int, str], netns: str | None
) -> ObservedTenants:
    """ZTOS-named host links by kind, with their FDB entries and addresses."""
    fdb = links.list_fdb(netns) if owned else ()
    addresses = _addresses_by_link(links.all_addresses(netns)) if owned else {}
    seen = [_host_link(link, names, netns, fdb, addresses.get(link.name, ())) for link in owned]
    return ObservedTenants(
        vxlans=tuple(o for o in seen if isinstance(o, ObservedVxlan)),
        bridges=tuple(o for o in seen if isinstance(o, ObservedBridge)),
        veths=tuple(o for o in seen if isinstance(o, ObservedVeth)),
        others=tuple(o for o in seen if isinstance(o, ObservedLink)),
    )


def _host_link(
    link: links.LinkInfo,
    names: dict[int, str],
    netns: str | None,
    fdb: Sequence[links.FdbEntry],
    addresses: tuple[str, ...],
) -> _HostLink:
    ipv6 = links.ipv6_enabled(link.name, netns)
    if link.kind == "vxlan" and link.vxlan is not None:
        return _vxlan(link, names, ipv6, fdb)
    if link.kind == "bridge":
        return _bridge(link, ipv6, addresses)
    if link.kind == "veth":
        return _veth(link, names, ipv6, fdb)
    return ObservedLink(link.name, link.kind, link.alias)


def _vxlan(
    link: links.LinkInfo, names: dict[int, str], ipv6: bool, fdb: Sequence[links.FdbEntry]
) -> ObservedVxlan:
    assert link.vxlan is not None
    flood = tuple(
        e.dst for e in fdb if e.ifname == link.name and e.mac == FLOOD_MAC and not e.master and e.dst
    )
    return ObservedVxlan(
        name=link.name,
        vni=link.vxlan.vni,
        local=link.vxlan.local,
        learning=link.vxlan.learning,
        dstport=link.vxlan.port,
        mtu=link.mtu,
        up=link.up,
        master=_master(link, names),
        port=_flags(link),
        ipv6=ipv6,
        alias=link.alias,
        flood=flood,
    )


def _bridge(link: links.LinkInfo, ipv6: bool, addresses: tuple[str, ...]) -> ObservedBridge:
    return ObservedBridge(link.name, link.mtu, link.up, ipv6, addresses, link.alias)


def _veth(
    link: links.LinkInfo, names: dict[int, str], ipv6: bool, fdb: Sequence[links.FdbEntry]
) -> ObservedVeth:
    pinned = tuple(
        e.mac for e in fdb if e.ifname == link.name and e.master and e.state == "static" and e.sticky
    )
    return ObservedVeth(
        name=link.name,
        index=link.index,
        peer_index=link.peer_index,
        mtu=link.mtu,
        up=link.up,
        master=_master(link, names),
        port=_flags(link),
        ipv6=ipv6,
        alias=link.alias,
        pinned=pinned,
    )


def _observe_namespaces(spec: TenantsSpec, host_netns: str | None) -> tuple[ObservedNamespace, ...]:
    """The host's own namespace is never a tenant's, even when a careless prefix matches it."""
    unmanaged = {w.netns for t in spec.tenants for w in t.workloads if not w.managed}
    present = set(links.list_netns()) - {host_netns}
    wanted = sorted(n for n in present if spec.netns_owned(n) or n in unmanaged)
    observed = (_observe_namespace(name) for name in wanted)
    return tuple(namespace for namespace in observed if namespace is not None)


def _observe_namespace(name: str) -> ObservedNamespace | None:
    """One namespace's links, addresses, ZTOS default routes and forwarding;
    None when it vanished while being read."""
    try:
        all_links = links.list_links(name)
        addresses = _addresses_by_link(links.all_addresses(name))
        gateways = links.default_gateways(name)
        forwarding = _forwarding(name)
    except NotFound:
        return None
    lo_up = any(link.name == "lo" and link.up for link in all_links)
    inner = tuple(_ns_link(link, addresses, gateways) for link in all_links if link.name != "lo")
    return ObservedNamespace(name=name, links=inner, forwarding=forwarding, lo_up=lo_up)


def _ns_link(
    link: links.LinkInfo, addresses: dict[str, tuple[str, ...]], gateways: Sequence[tuple[str, str]]
) -> ObservedNsLink:
    return ObservedNsLink(
        name=link.name,
        index=link.index,
        kind=link.kind,
        peer_index=link.peer_index,
        mac=link.mac,
        mtu=link.mtu,
        up=link.up,
        addresses=addresses.get(link.name, ()),
        gateways=tuple(gateway for name, gateway in gateways if name == link.name),
        alias=link.alias,
    )


def _forwarding(netns: str) -> bool:
    v4 = links.get_sysctl("net.ipv4.ip_forward", netns)
    v6 = links.get_sysctl("net.ipv6.conf.all.forwarding", netns)
    return v4 == "1" and v6 == "1"


def _addresses_by_link(found: Iterable[links.AddressInfo]) -> dict[str, tuple[str, ...]]:
    """Non-link-local ``ADDR/LEN`` per link name."""
    by_link: dict[str, list[str]] = {}
    for info in found:
        cidr = f"{info.address}/{info.prefixlen}"
        if not ipaddress.ip_interface(cidr).is_link_local:
            by_link.setdefault(info.ifname, []).append(cidr)
    return {name: tuple(sorted(cidrs)) for name, cidrs in by_link.items()}


def _master(link: links.LinkInfo, names: dict[int, str]) -> str | None:
    return None if link.master_index is None else names.get(link.master_index, "?")


def _flags(link: links.LinkInfo) -> PortFlags | None:
    if link.port is None:
        return None
    return PortFlags(link.port.learning, link.port.neigh_suppress, link.port.isolated)


# --- the driver ------------------------------------------------------------------------


def reconcile_tenants(
    desired: TenantsSpec, netns: str | None = None, executor: TenantExecutor | None = None
) -> list[TenantOperation]:
    """Make the host's tenants match ``desired``; returns the plan applied (``[]`` when converged)."""
    operations = plan_tenants(desired, observe_tenants(desired, netns))
    (executor or TenantHostExecutor(netns)).apply(operations)
    return operations
