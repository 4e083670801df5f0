"""Which mDNS sightings to believe (pure), and what they change.

A sighting is trusted only when the directory (the node map) has a peer of
that name with the same WireGuard key and the same certificate serial: a
forged announcement, a stale one from before a renewal, or one from a
revoked host (absent from the node map) is ignored and recorded as such.
A trusted sighting gives a direct endpoint on the local link, which replaces
the endpoint the peer reported to the controller.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

from ztos.discovery.mdns import Sighting
from ztos.netmap import NodeMap


@dataclass(frozen=True)
class Verdict:
    node: str
    trusted: bool
    reason: str
    endpoint: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def local_endpoint(sighting: Sighting) -> str | None:
    """A routable address from the announcement, IPv6 first (link-local needs a scope: skipped)."""
    usable = [ipaddress.ip_address(a) for a in sighting.addresses]
    usable = [a for a in usable if not a.is_link_local and not a.is_loopback]
    usable.sort(key=lambda a: (a.version != 6, int(a)))
    if not usable:
        return None
    address = usable[0]
    return f"[{address}]:{sighting.port}" if address.version == 6 else f"{address}:{sighting.port}"


def judge(sighting: Sighting, node_map: NodeMap) -> Verdict:
    peer = next((p for p in node_map.peers if p.name == sighting.node), None)
    if peer is None:
        return Verdict(sighting.node, False, "not an active node of this network")
    if peer.public_key != sighting.wg_public_key:
        return Verdict(sighting.node, False, "WireGuard key does not match the directory")
    if peer.cert_serial != sighting.cert_serial:
        return Verdict(sighting.node, False, "certificate serial does not match the directory")
    endpoint = local_endpoint(sighting)
    if endpoint is None:
        return Verdict(sighting.node, False, "no usable address announced")
    return Verdict(sighting.node, True, "matches the directory", endpoint)


def verdicts(sightings: list[Sighting], node_map: NodeMap) -> list[Verdict]:
    return sorted((judge(s, node_map) for s in sightings if s.node != node_map.name), key=lambda v: v.node)


def with_local_endpoints(node_map: NodeMap, judged: list[Verdict]) -> NodeMap:
    direct = {v.node: v.endpoint for v in judged if v.trusted and v.endpoint}
    if not direct:
        return node_map
    peers = tuple(p.model_copy(update={"endpoint": direct.get(p.name, p.endpoint)}) for p in node_map.peers)
    return node_map.model_copy(update={"peers": peers})
