"""Desired state of the tenants one host serves, as plain frozen data.

Layout on a host, per tenant (names are given by the agent; see ``TenantSpec``):

    host namespace                                 tenant namespace (the VRF)
    ┌──────────────────────────────────────┐       ┌───────────────────────────┐
    │ vxlan <vxlan> (VNI, local = overlay  │       │ gw0: anycast gateway       │
    │   address, rides inside WireGuard)   │       │   addresses + gateway MAC  │
    │ bridge <bridge>, no IP address  ─────┼─veth──┼─ (same MAC/IPs on every    │
    │   ports: vxlan, <gateway_port>,      │       │   host serving the tenant) │
    │          one veth per workload       │       └───────────────────────────┘
    └──────────────────────────────────────┘
    workload namespaces: eth0 (veth peer of a bridge port), addresses, default
    routes via the anycast gateway.

The VXLAN device and the bridge stay in the host namespace because that is
where FRR's zebra must see them for EVPN; the host has no address on them, so
it cannot route tenant traffic, and tenants with overlapping ranges never meet
(different VNI, bridge, namespace). Frames from the anycast gateway MAC are
kept off the VXLAN port so remote bridges never learn it.

Ownership is by name: ZTOS owns every host-namespace link named
``<device_prefix>`` + ``v`` (VXLAN), ``b`` (bridge), ``g`` (gateway veth) or
``w`` (workload veth), and every namespace named ``<netns_prefix>…``; the
reconciler removes those that are not desired and touches nothing else. The
specs are validated when built so that a desired object can never fall
outside those prefixes (it would be leaked on detach) nor inside them when
ZTOS does not own it (an unmanaged workload's namespace would be deleted).
On one machine running several hosts (the lab), every host needs its own
``netns_prefix``: namespace names are machine-wide.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ztos import naming
from ztos.dataplane.state import check_ifname
from ztos.errors import InvalidInput

VXLAN_PORT = 4789
MAX_VNI = 2**24 - 1
GATEWAY_IFNAME = "gw0"
WORKLOAD_IFNAME = "eth0"
VXLAN_LETTER, BRIDGE_LETTER, GATEWAY_LETTER, WORKLOAD_LETTER = "v", "b", "g", "w"
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,63}$")
NETNS_MAX = 128  # ZTOS's own names add prefixes to what an admin chose (ztos.naming.NETNS_MAX)


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload on this host: a namespace with one interface on the tenant bridge.

    ``managed`` workloads are namespaces ZTOS creates (``ztos workload add``,
    standing in for containers) and removes; otherwise ``netns`` names an
    existing namespace (a container's), which ZTOS only plugs in and out.
    """

    name: str
    netns: str
    host_port: str  # veth end in the host namespace, enslaved to the bridge (<= 15 chars)
    mac: str
    addresses: tuple[str, ...]  # CIDRs inside the workload, e.g. "fd00:1:2:1::10/64"
    gateways: tuple[str, ...] = ()  # default routes via these (anycast gateway addresses)
    managed: bool = True

    def __post_init__(self) -> None:
        what = f"workload {self.name!r}"
        check_label(self.name, "workload name")
        check_netns_name(self.netns, what)
        check_ifname(self.host_port)
        check_unicast_mac(self.mac, what)
        for cidr in self.addresses:
            check_interface(cidr, what)
        families = [check_address(gateway, f"{what} gateway").version for gateway in self.gateways]
        if len(families) != len(set(families)):
            raise InvalidInput(f"{what}: at most one gateway per address family, got {self.gateways}")


@dataclass(frozen=True)
class TenantSpec:
    """One tenant segment on this host.

    ``flood`` is the head-end replication list (remote VTEP addresses) in the
    embedded mode, where the kernel learns MACs (``learning=True``); it is
    ``None`` in EVPN mode, where FRR programs the FDB from type-2/3 routes and
    learning is off.
    """

    name: str
    vni: int
    vxlan: str  # device names in the host namespace, <= 15 chars
    bridge: str
    gateway_port: str
    vrf_netns: str
    local_vtep: str  # this host's overlay address: IPv6, or IPv4 in EVPN mode (FRR 8.4)
    mtu: int
    learning: bool
    flood: tuple[str, ...] | None
    gateway_mac: str
    gateway_addresses: tuple[str, ...]  # CIDRs on gw0 in the tenant namespace
    workloads: tuple[WorkloadSpec, ...] = ()
    dstport: int = VXLAN_PORT

    def __post_init__(self) -> None:
        what = f"tenant {self.name!r}"
        check_label(self.name, "tenant name")
        for name in (self.vxlan, self.bridge, self.gateway_port):
            check_ifname(name)
        check_netns_name(self.vrf_netns, what)
        _check_range(self.vni, 1, MAX_VNI, f"{what}: vni")
        _check_range(self.dstport, 1, 65535, f"{what}: dstport")
        _check_range(self.mtu, 1280, 65535, f"{what}: mtu (IPv6 needs 1280)")
        check_unicast_mac(self.gateway_mac, f"{what} gateway")
        for cidr in self.gateway_addresses:
            check_interface(cidr, f"{what} gateway")
        self._check_vteps(what)
        _check_unique((w.name for w in self.workloads), f"{what}: workload name")
        macs = (self.gateway_mac, *(w.mac for w in self.workloads))
        _check_unique((mac.lower() for mac in macs), f"{what}: MAC address (gateway and workloads)")

    @property
    def evpn(self) -> bool:
        """FRR programs the FDB (type-2/3 routes); ZTOS leaves flood entries alone."""
        return self.flood is None

    def _check_vteps(self, what: str) -> None:
        version = check_address(self.local_vtep, f"{what} local_vtep").version
        if self.flood is None and self.learning:
            raise InvalidInput(
                f"{what}: flood=None means EVPN (FRR programs the FDB), which needs learning=False; "
                "give a flood list for the embedded mode"
            )
        for remote in self.flood or ():
            if check_address(remote, f"{what} flood").version != version:
                raise InvalidInput(f"{what}: flood VTEP {remote} is not of the family of {self.local_vtep}")


@dataclass(frozen=True)
class TenantsSpec:
    """Every tenant this host serves. Devices whose names start with
    ``device_prefix`` + v/b/g/w and namespaces starting with ``netns_prefix``
    that are not in ``tenants`` are ZTOS leftovers (a detached tenant) and are
    removed. The ``-`` in ``zt-`` keeps WireGuard names (``ztos0``, the lab's
    ``zt<lab>h<N>``) out of that set; end ``netns_prefix`` with a separator
    too, so that host ``h1``'s prefix never matches host ``h10``'s namespaces."""

    tenants: tuple[TenantSpec, ...]
    device_prefix: str = "zt-"
    netns_prefix: str = "ztos-"

    def __post_init__(self) -> None:
        if not self.device_prefix or len(self.device_prefix) > 8:
            raise InvalidInput(f"device_prefix {self.device_prefix!r} must be 1-8 characters")
        if not self.netns_prefix:
            raise InvalidInput("netns_prefix must not be empty: it marks the namespaces ZTOS may delete")
        _check_unique((t.name for t in self.tenants), "tenant name")
        _check_unique((t.vni for t in self.tenants), "tenant vni")
        _check_unique((name for t in self.tenants for name, _ in device_names(t)), "device name")
        _check_unique((name for t in self.tenants for name in owned_netns(t)), "namespace")
        for tenant in self.tenants:
            self._check_prefixes(tenant)

    def device_owned(self, name: str) -> bool:
        """Whether a host-namespace link name is in ZTOS's tenant name space."""
        letters = (VXLAN_LETTER, BRIDGE_LETTER, GATEWAY_LETTER, WORKLOAD_LETTER)
        return any(name.startswith(self.device_prefix + letter) for letter in letters)

    def netns_owned(self, name: str) -> bool:
        return name.startswith(self.netns_prefix)

    def _check_prefixes(self, tenant: TenantSpec) -> None:
        for name, letter in device_names(tenant):
            prefix = self.device_prefix + letter
            if not name.startswith(prefix):
                raise InvalidInput(
                    f"tenant {tenant.name!r}: device {name!r} must start with {prefix!r} "
                    "so that detaching the tenant finds and removes it"
                )
        for netns in owned_netns(tenant):
            if not self.netns_owned(netns):
                raise InvalidInput(
                    f"tenant {tenant.name!r}: namespace {netns!r} must start with {self.netns_prefix!r}"
                )
        for workload in tenant.workloads:
            if not workload.managed and self.netns_owned(workload.netns):
                raise InvalidInput(
                    f"workload {workload.name!r}: unmanaged namespace {workload.netns!r} must not start with "
                    f"{self.netns_prefix!r} (ZTOS deletes such namespaces when they are not desired)"
                )


def device_names(tenant: TenantSpec) -> tuple[tuple[str, str], ...]:
    """``(link name, prefix letter)`` of every host-namespace link the tenant needs."""
    return (
        (tenant.vxlan, VXLAN_LETTER),
        (tenant.bridge, BRIDGE_LETTER),
        (tenant.gateway_port, GATEWAY_LETTER),
        *((w.host_port, WORKLOAD_LETTER) for w in tenant.workloads),
    )


def owned_netns(tenant: TenantSpec) -> tuple[str, ...]:
    """The namespaces ZTOS creates (and deletes) for the tenant."""
    return (tenant.vrf_netns, *(w.netns for w in tenant.workloads if w.managed))


def check_label(value: str, what: str) -> str:
    """Tenant and workload names end up in link aliases (``ztos tenant=NAME``)."""
    if not LABEL_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidInput(
            f"{what} {value!r} must be 1-63 letters, digits, '_', '.', ':', '-' (not '.' or '..')"
        )
    return value


def check_netns_name(value: str, what: str) -> str:
    if not naming.is_netns(value, NETNS_MAX):
        raise InvalidInput(f"{what}: {naming.netns_problem(value, NETNS_MAX)}")
    return value


def check_unicast_mac(value: str, what: str) -> str:
    if not MAC_RE.fullmatch(value) or int(value[:2], 16) & 1 or value == "00:00:00:00:00:00":
        raise InvalidInput(f"{what}: {value!r} is not a unicast MAC address like 02:00:5e:00:01:01")
    return value


def check_address(value: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidInput(f"{what}: {value!r} is not an IP address (no prefix length)") from exc


def check_interface(value: str, what: str) -> str:
    try:
        ipaddress.ip_interface(value)
    except ValueError as exc:
        raise InvalidInput(f"{what}: {value!r} is not ADDRESS/PREFIXLEN") from exc
    if "/" not in value:
        raise InvalidInput(f"{what}: {value!r} needs a prefix length, e.g. {value}/64")
    return value


def _check_range(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"{what} {value} must be {low}..{high}")


def _check_unique(values: Iterable[object], what: str) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise InvalidInput(f"{what} {value!r} is used twice")
        seen.add(value)
