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
"""

from __future__ import annotations

from dataclasses import dataclass

VXLAN_PORT = 4789


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


@dataclass(frozen=True)
class TenantsSpec:
    """Every tenant this host serves. Devices whose names start with
    ``device_prefix`` and namespaces starting with ``netns_prefix`` that are not
    in ``tenants`` are ZTOS leftovers (a detached tenant) and are removed."""

    tenants: tuple[TenantSpec, ...]
    device_prefix: str = "zt"
    netns_prefix: str = "ztos-"
