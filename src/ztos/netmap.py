"""The node map: one node's desired view of the mesh, computed from the directory.

A pure function of (network, nodes, which node): no I/O, so the controller
computes it per request and unit tests cover it as tables. The agent turns it
into a data-plane spec (``ztos.agent.desired``).

Peers are every *other active* node; a revoked node is simply absent, so the
next reconcile on every host removes it. A peer's endpoint is its first
reported IPv6 underlay endpoint, else its first IPv4 one.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict

from ztos import addressing
from ztos.errors import Forbidden, NotFound
from ztos.model import Network, Node, NodeStatus

PERSISTENT_KEEPALIVE = 25


class MapPeer(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    overlay_ipv6: ipaddress.IPv6Address
    overlay_ipv4: ipaddress.IPv4Address
    underlay_mtu: int
    persistent_keepalive: int = PERSISTENT_KEEPALIVE


class NodeMap(BaseModel):
    model_config = ConfigDict(frozen=True)
    network: str
    name: str
    overlay_ipv6: ipaddress.IPv6Address
    overlay_ipv4: ipaddress.IPv4Address
    addresses: tuple[str, ...]
    routes: tuple[str, ...]
    listen_port: int
    underlay_mtu: int
    peers: tuple[MapPeer, ...]


def choose_endpoint(endpoints: list[str]) -> str | None:
    """IPv6 first (the underlay ZTOS prefers), IPv4 as the fallback."""
    ipv6 = [e for e in endpoints if e.startswith("[")]
    ipv4 = [e for e in endpoints if not e.startswith("[")]
    candidates = ipv6 + ipv4
    return candidates[0] if candidates else None


def peer_of(node: Node) -> MapPeer:
    return MapPeer(
        name=node.name,
        public_key=node.wg_public_key,
        endpoint=choose_endpoint(node.endpoints),
        allowed_ips=(f"{node.overlay_ipv6}/128", f"{node.overlay_ipv4}/32"),
        overlay_ipv6=node.overlay_ipv6,
        overlay_ipv4=node.overlay_ipv4,
        underlay_mtu=node.underlay_mtu,
    )


def build(network: Network, nodes: list[Node], name: str) -> NodeMap:
    """The desired mesh state of node ``name``."""
    me = next((node for node in nodes if node.name == name), None)
    if me is None:
        raise NotFound(f"node {name!r} is not in the directory")
    if me.status is not NodeStatus.ACTIVE:
        raise Forbidden(f"node {name!r} is {me.status.value}; it has no place in the mesh")
    peers = sorted(
        (peer_of(n) for n in nodes if n.name != name and n.status is NodeStatus.ACTIVE),
        key=lambda peer: peer.name,
    )
    return NodeMap(
        network=network.name,
        name=name,
        overlay_ipv6=me.overlay_ipv6,
        overlay_ipv4=me.overlay_ipv4,
        addresses=(f"{me.overlay_ipv6}/128", f"{me.overlay_ipv4}/32"),
        routes=(str(addressing.node_subnet(network.ula_prefix)), str(network.ipv4_prefix)),
        listen_port=me.listen_port,
        underlay_mtu=me.underlay_mtu,
        peers=tuple(peers),
    )
