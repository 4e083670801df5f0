"""From the node map's tenants and BGP settings to data-plane and FRR specs (pure).

Names on the host follow one scheme, so the reconcilers can find leftovers
of a detached tenant without touching anything else:

* host-namespace devices: ``zt-v<VNI>`` (VXLAN), ``zt-b<VNI>`` (bridge),
  ``zt-g<VNI>`` (veth to the tenant namespace), ``zt-w<hash>`` (a workload's
  bridge port). ``zt-`` never starts a WireGuard interface name (``ztos0``,
  or ``zt<lab>h<N>`` in the lab, whose names have no ``-``).
* namespaces: ``<prefix>t-<tenant>`` (the tenant's VRF) and
  ``<prefix>w-<workload>`` (a workload ZTOS created); ``<prefix>`` is
  ``ztos-`` on a real host and the lab host's namespace name in the lab.
"""

from __future__ import annotations

import hashlib

from ztos.dataplane.tenant_plan import tenant_mtu
from ztos.dataplane.tenant_state import TenantSpec, TenantsSpec, WorkloadSpec
from ztos.netmap import MapTenant, MapWorkload, NodeMap
from ztos.routing.spec import BgpNeighbor, FrrSpec

DEVICE_PREFIX = "zt-"


def workload_port(name: str) -> str:
    return f"{DEVICE_PREFIX}w{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def workload_spec(workload: MapWorkload, tenant: MapTenant, netns_prefix: str) -> WorkloadSpec:
    return WorkloadSpec(
        name=workload.name,
        netns=workload.netns or f"{netns_prefix}w-{workload.name}",
        host_port=workload_port(workload.name),
        mac=workload.mac,
        addresses=workload.addresses,
        gateways=tuple(address.split("/")[0] for address in tenant.gateway_addresses),
        managed=workload.netns is None,
    )


def tenant_spec(tenant: MapTenant, node_map: NodeMap, wg_mtu: int, netns_prefix: str) -> TenantSpec:
    evpn = node_map.bgp is not None and node_map.bgp.evpn
    return TenantSpec(
        name=tenant.name,
        vni=tenant.vni,
        vxlan=f"{DEVICE_PREFIX}v{tenant.vni}",
        bridge=f"{DEVICE_PREFIX}b{tenant.vni}",
        gateway_port=f"{DEVICE_PREFIX}g{tenant.vni}",
        vrf_netns=f"{netns_prefix}t-{tenant.name}",
        local_vtep=str(node_map.overlay_ipv4 if evpn else node_map.overlay_ipv6),
        mtu=tenant_mtu(wg_mtu, ipv6_vtep=not evpn),
        learning=not evpn,
        flood=None if evpn else tenant.remote_vteps,
        gateway_mac=tenant.gateway_mac,
        gateway_addresses=tenant.gateway_addresses,
        workloads=tuple(workload_spec(w, tenant, netns_prefix) for w in tenant.workloads),
    )


def tenants_spec(node_map: NodeMap, wg_mtu: int, netns_prefix: str) -> TenantsSpec:
    return TenantsSpec(
        tenants=tuple(tenant_spec(t, node_map, wg_mtu, netns_prefix) for t in node_map.tenants),
        device_prefix=DEVICE_PREFIX,
        netns_prefix=netns_prefix,
    )


def frr_spec(node_map: NodeMap, instance: str, config_dir: str) -> FrrSpec | None:
    """FRR runs only when BGP is configured for the network."""
    if node_map.bgp is None:
        return None
    return FrrSpec(
        instance=instance,
        asn=node_map.bgp.asn,
        router_id=node_map.bgp.router_id,
        neighbors=tuple(
            BgpNeighbor(address=n.address, remote_as=n.remote_as, description=n.description)
            for n in node_map.bgp.neighbors
        ),
        evpn=node_map.bgp.evpn,
        config_dir=config_dir,
    )
