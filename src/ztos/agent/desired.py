"""From a node map to the data-plane spec of this host (pure).

Also the underlay logic the agent needs before it can enrol: which of the
host's addresses are endpoints peers can use (IPv6 global first, IPv4 as the
fallback; never loopback, link-local or the overlay itself).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ztos.dataplane.mtu import wireguard_mtu
from ztos.dataplane.state import InterfaceSpec, PeerSpec
from ztos.netmap import NodeMap


@dataclass(frozen=True)
class HostAddress:
    """One address configured on the host, with the MTU of its link."""

    ifname: str
    address: str
    mtu: int


def interface_spec(node_map: NodeMap, ifname: str, private_key_path: str, mtu: int) -> InterfaceSpec:
    return InterfaceSpec(
        name=ifname,
        private_key_path=private_key_path,
        listen_port=node_map.listen_port,
        mtu=mtu,
        addresses=node_map.addresses,
        routes=node_map.routes,
        peers=tuple(
            PeerSpec(
                public_key=peer.public_key,
                endpoint=peer.endpoint,
                allowed_ips=peer.allowed_ips,
                persistent_keepalive=peer.persistent_keepalive,
            )
            for peer in node_map.peers
        ),
    )


def endpoint_host(endpoint: str) -> str:
    """``[2001:db8::1]:51820`` -> ``2001:db8::1``; ``192.0.2.1:51820`` -> ``192.0.2.1``."""
    return endpoint.rpartition(":")[0].strip("[]")


def mesh_mtu(local_mtu: int, node_map: NodeMap, path_mtus: dict[str, int]) -> int:
    """The largest WireGuard MTU every path fits: reported underlay MTUs and measured paths."""
    peer_mtus = [peer.underlay_mtu for peer in node_map.peers]
    measured = [
        path_mtus[endpoint_host(p.endpoint)]
        for p in node_map.peers
        if p.endpoint and endpoint_host(p.endpoint) in path_mtus
    ]
    # The larger IPv6 overhead applies unless every path is IPv4.
    all_ipv4 = bool(node_map.peers) and all(
        p.endpoint and not p.endpoint.startswith("[") for p in node_map.peers
    )
    return wireguard_mtu(local_mtu, [*peer_mtus, *measured], ipv6_underlay=not all_ipv4)


def underlay_endpoints(addresses: Iterable[HostAddress], port: int, exclude: set[str]) -> list[str]:
    """Endpoints to report, IPv6 global addresses first, then IPv4."""
    usable = []
    for host in addresses:
        address = ipaddress.ip_address(host.address)
        if host.ifname in exclude or address.is_loopback or address.is_link_local or address.is_multicast:
            continue
        usable.append(address)
    ipv6 = sorted(a for a in usable if a.version == 6)
    ipv4 = sorted(a for a in usable if a.version == 4)
    return [f"[{a}]:{port}" for a in ipv6] + [f"{a}:{port}" for a in ipv4]


def underlay_mtu(addresses: Iterable[HostAddress], endpoints: list[str]) -> int:
    """MTU of the link carrying the preferred endpoint (1500 when unknown)."""
    if not endpoints:
        return 1500
    wanted = endpoint_host(endpoints[0])
    return next(
        (h.mtu for h in addresses if ipaddress.ip_address(h.address) == ipaddress.ip_address(wanted)), 1500
    )
