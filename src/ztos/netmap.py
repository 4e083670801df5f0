"""The node map: one node's desired view of the mesh, computed from the directory.

A pure function of (network, nodes, which node): no I/O, so the controller
computes it per request and unit tests cover it as tables. The agent turns it
into a data-plane spec (``ztos.agent.desired``).

Peers are the *other active* nodes this host needs (every one while the
network is open; see ``ztos.controller.nodemaps``); a revoked node is simply
absent, so the next reconcile on every host removes it. A peer's endpoint is the one the
controller observed (the source address of its last report, with its listen
port), else its first self-claimed IPv6 underlay endpoint, else its first IPv4
one. A self-claimed endpoint whose address another host was observed at, or
that a host enrolled earlier claims too, is never handed out: a host cannot
point its peers at another host's address.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ztos import addressing, tenancy
from ztos.errors import Forbidden, NotFound
from ztos.model import Network, Node, NodeStatus, Tenant, Workload

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
    cert_serial: str = ""
    persistent_keepalive: int = PERSISTENT_KEEPALIVE


class MapWorkload(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    mac: str
    addresses: tuple[str, ...]
    netns: str | None = None


class MapTenant(BaseModel):
    """A tenant this node serves: its segment, gateway, remote VTEPs and local workloads."""

    model_config = ConfigDict(frozen=True)
    name: str
    vni: int
    gateway_mac: str
    gateway_addresses: tuple[str, ...]
    remote_vteps: tuple[str, ...]
    workloads: tuple[MapWorkload, ...]


class MapBgpNeighbor(BaseModel):
    model_config = ConfigDict(frozen=True)
    address: str
    remote_as: int | None = None  # None: a mesh peer in our own AS
    description: str = ""


class MapBgp(BaseModel):
    model_config = ConfigDict(frozen=True)
    asn: int
    evpn: bool
    router_id: str
    neighbors: tuple[MapBgpNeighbor, ...]


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
    tenants: tuple[MapTenant, ...] = ()
    bgp: MapBgp | None = None
    policy: dict[str, Any] | None = None  # {"rev", "text", "groups", "snapshot"}: what agents enforce


def choose_endpoint(endpoints: list[str]) -> str | None:
    """IPv6 first (the underlay ZTOS prefers), IPv4 as the fallback."""
    ipv6 = [e for e in endpoints if e.startswith("[")]
    ipv4 = [e for e in endpoints if not e.startswith("[")]
    candidates = ipv6 + ipv4
    return candidates[0] if candidates else None


@functools.lru_cache(maxsize=65536)
def endpoint_host(endpoint: str) -> str:
    """The address part of ``ADDRESS:PORT`` / ``[IPv6]:PORT``, normalised for comparison."""
    return str(ipaddress.ip_address(endpoint.rpartition(":")[0].strip("[]")))


class EndpointOwners:
    """Who owns which underlay address, indexed once per build so that trusting one
    peer's claims costs O(its endpoints), not O(nodes)."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.observed: dict[str, set[str]] = defaultdict(set)
        self.first_claim: dict[str, tuple[datetime, str]] = {}
        for node in nodes:
            if node.observed_endpoint is not None:
                self.observed[endpoint_host(node.observed_endpoint)].add(node.name)
            for host in {endpoint_host(e) for e in node.endpoints}:
                claim = (node.enrolled_at, node.name)
                self.first_claim[host] = min(claim, self.first_claim.get(host, claim))

    def trusted(self, node: Node) -> list[str]:
        """``node``'s observed endpoint, then its claims that no other host owns: a claim is
        dropped when another host was observed at that address or claimed it first."""
        observed = [node.observed_endpoint] if node.observed_endpoint is not None else []
        return observed + [e for e in node.endpoints if not self._owned_by_other(node, endpoint_host(e))]

    def _owned_by_other(self, node: Node, host: str) -> bool:
        if self.observed.get(host, set()) - {node.name}:
            return True
        first = self.first_claim.get(host)
        return first is not None and first < (node.enrolled_at, node.name)


def trusted_endpoints(node: Node, nodes: list[Node]) -> list[str]:
    """``node``'s endpoints that no other host owns (see ``EndpointOwners``)."""
    return EndpointOwners(nodes).trusted(node)


def peer_of(node: Node, owners: EndpointOwners | None = None) -> MapPeer:
    trusted = (owners or EndpointOwners([node])).trusted(node)
    return MapPeer(
        name=node.name,
        public_key=node.wg_public_key,
        endpoint=trusted[0] if node.observed_endpoint is not None else choose_endpoint(trusted),
        allowed_ips=(f"{node.overlay_ipv6}/128", f"{node.overlay_ipv4}/32"),
        overlay_ipv6=node.overlay_ipv6,
        overlay_ipv4=node.overlay_ipv4,
        underlay_mtu=node.underlay_mtu,
        cert_serial=node.cert_serial,
    )


def tenant_peers(tenants: Iterable[Tenant], name: str) -> frozenset[str]:
    """The nodes sharing a tenant with ``name`` (``Tenant.nodes`` is the membership)."""
    shared = {n for t in tenants if name in t.nodes for n in t.nodes}
    shared.discard(name)
    return frozenset(shared)


def build(
    network: Network,
    nodes: list[Node],
    name: str,
    tenants: list[Tenant] | None = None,
    workloads: list[Workload] | None = None,
    peers: Collection[str] | None = None,
    owners: EndpointOwners | None = None,
) -> NodeMap:
    """The desired state of node ``name``: mesh peers, tenants and BGP.

    ``peers`` limits the mesh to the nodes this host needs (need to know, chosen
    by ``ztos.controller.nodemaps``); None keeps the open mesh of every active node.
    ``owners`` may be passed in when many maps are built from the same nodes.
    """
    me = next((node for node in nodes if node.name == name), None)
    active = {n.name: n for n in nodes if n.status is NodeStatus.ACTIVE}
    owners = owners or EndpointOwners(active.values())
    return build_from(
        network, me, name, active, tenants or [], workloads or [], peers, lambda n: peer_of(active[n], owners)
    )


def build_from(
    network: Network,
    me: Node | None,
    name: str,
    active: Mapping[str, Node],
    tenants: Iterable[Tenant],
    workloads: Iterable[Workload],
    peers: Collection[str] | None,
    peer: Callable[[str], MapPeer],
) -> NodeMap:
    """``build`` over an index kept between builds: ``active`` nodes by name and
    ``peer``, each node's peer entry (memoised by the caller). With a ``peers``
    limit, iBGP neighbours are the nodes sharing a tenant (EVPN routes are about
    tenants); the configured external peers stay."""
    if me is None:
        raise NotFound(f"node {name!r} is not in the directory")
    if me.status is not NodeStatus.ACTIVE:
        raise Forbidden(f"node {name!r} is {me.status.value}; it has no place in the mesh")
    wanted = set(active) if peers is None else set(peers) & active.keys()
    wanted.discard(name)
    evpn = network.bgp is not None and network.bgp.evpn
    served = [t for t in tenants if name in t.nodes]
    local = [w for w in workloads if w.node == name]
    neighbours = wanted if peers is None else wanted & tenant_peers(served, name)
    return NodeMap(
        network=network.name,
        name=name,
        overlay_ipv6=me.overlay_ipv6,
        overlay_ipv4=me.overlay_ipv4,
        addresses=(f"{me.overlay_ipv6}/128", f"{me.overlay_ipv4}/32"),
        routes=(str(addressing.node_subnet(network.ula_prefix)), str(network.ipv4_prefix)),
        listen_port=me.listen_port,
        underlay_mtu=me.underlay_mtu,
        peers=tuple(peer(n) for n in sorted(wanted)),
        tenants=tuple(map_tenant(t, me, active, local, evpn) for t in sorted(served, key=lambda t: t.vni)),
        bgp=map_bgp(network, me, [active[n] for n in neighbours]),
    )


def vtep_of(node: Node, evpn: bool) -> str:
    """IPv6 overlay VTEPs in the embedded mode; IPv4 in EVPN mode (FRR 8.4 needs IPv4)."""
    return str(node.overlay_ipv4 if evpn else node.overlay_ipv6)


def map_tenant(
    tenant: Tenant, me: Node, active: Mapping[str, Node], workloads: Iterable[Workload], evpn: bool
) -> MapTenant:
    remote = sorted(vtep_of(active[n], evpn) for n in tenant.nodes if n != me.name and n in active)
    local = sorted(
        (w for w in workloads if w.tenant == tenant.name and w.node == me.name), key=lambda w: w.name
    )
    return MapTenant(
        name=tenant.name,
        vni=tenant.vni,
        gateway_mac=tenancy.gateway_mac(tenant.vni),
        gateway_addresses=tenancy.gateway_addresses(tenant),
        remote_vteps=tuple(remote),
        workloads=tuple(
            MapWorkload(
                name=w.name, mac=w.mac, addresses=tuple(str(a) for a in (w.ipv6, w.ipv4) if a), netns=w.netns
            )
            for w in local
        ),
    )


def map_bgp(network: Network, me: Node, mesh: Iterable[Node]) -> MapBgp | None:
    """iBGP over the overlay to the ``mesh`` nodes, plus the configured extra peers."""
    if network.bgp is None:
        return None
    neighbours = [
        MapBgpNeighbor(address=str(n.overlay_ipv6), description=n.name)
        for n in sorted(mesh, key=lambda n: n.name)
        if n.name != me.name
    ]
    extra = [
        MapBgpNeighbor(address=str(p.address), remote_as=p.asn, description="configured peer")
        for p in network.bgp.peers
    ]
    return MapBgp(
        asn=network.bgp.asn,
        evpn=network.bgp.evpn,
        router_id=str(me.overlay_ipv4),
        neighbors=tuple(neighbours + extra),
    )


# --- map updates: what an agent holding a map is sent when the directory moves --------------


def map_digest(node_map: NodeMap) -> str:
    """The SHA-256 of the map's canonical JSON: equal digests, equal maps."""
    return hashlib.sha256(node_map.model_dump_json().encode()).hexdigest()


def rest_digest(node_map: NodeMap) -> str:
    """The digest of everything but the peers (tenants, BGP, policy...): sent again only when it moves."""
    return hashlib.sha256(node_map.model_dump_json(exclude={"peers"}).encode()).hexdigest()


DIGEST_PATTERN = "^[0-9a-f]{64}$"


class HeldMap(BaseModel):
    """What an agent says of the map it holds: the revision it came with and its digests."""

    since: int | None = Field(default=None, ge=0, le=2**63 - 1)
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    rest: str | None = Field(default=None, pattern=DIGEST_PATTERN)

    @classmethod
    def of(cls, node_map: NodeMap | None, revision: int | None) -> HeldMap:
        if node_map is None:
            return cls()
        return cls(since=revision, digest=map_digest(node_map), rest=rest_digest(node_map))


class MapUpdate(BaseModel):
    """The answer to an agent that says which map it holds (``GET /api/v1/netmap/update``).

    ``unchanged``: the held map is current. ``delta``: the peers in
    ``peers_changed`` replace or join the held ones, those in ``peers_removed``
    leave, and ``rest`` (everything but the peers) replaces the held one when it
    is given. ``full``: ``map`` is the whole map (first contact, or when the
    controller cannot tell what changed). The agent checks the result against
    ``digest`` and asks for the full map on any mismatch, so a delta can never
    leave it holding a map the controller did not build.
    """

    kind: Literal["unchanged", "delta", "full"]
    revision: int
    digest: str
    map: NodeMap | None = None
    peers_changed: tuple[MapPeer, ...] = ()
    peers_removed: tuple[str, ...] = ()
    rest: dict[str, Any] | None = None


def update_for(
    current: NodeMap,
    revision: int,
    held_digest: str | None,
    held_rest: str | None,
    moved: Collection[str] | None,
) -> MapUpdate:
    """What to send an agent holding the map with ``held_digest``; ``moved`` are the
    nodes whose peer entry may have changed since its revision (None: unknown)."""
    digest = map_digest(current)
    if held_digest == digest:
        return MapUpdate(kind="unchanged", revision=revision, digest=digest)
    if held_digest is None or moved is None:
        return MapUpdate(kind="full", revision=revision, digest=digest, map=current)
    peers = {p.name: p for p in current.peers}
    moved = set(moved) - {current.name}
    rest = None if held_rest == rest_digest(current) else current.model_dump(mode="json", exclude={"peers"})
    return MapUpdate(
        kind="delta",
        revision=revision,
        digest=digest,
        peers_changed=tuple(peers[n] for n in sorted(moved) if n in peers),
        peers_removed=tuple(sorted(n for n in moved if n not in peers)),
        rest=rest,
    )


def applied(held: NodeMap | None, update: MapUpdate) -> NodeMap | None:
    """The map ``update`` leads to from ``held``; None when it does not lead to the map
    the controller built (the digest differs, or a delta came without a held map)."""
    if update.kind == "full":
        result = update.map
    elif held is None:
        return None
    elif update.kind == "unchanged":
        result = held
    else:
        peers = {p.name: p for p in held.peers}
        for name in update.peers_removed:
            peers.pop(name, None)
        peers.update((p.name, p) for p in update.peers_changed)
        fields = held.model_dump(mode="json", exclude={"peers"}) if update.rest is None else update.rest
        result = NodeMap.model_validate(
            {**fields, "peers": [peers[n].model_dump(mode="json") for n in sorted(peers)]}
        )
    return result if result is not None and map_digest(result) == update.digest else None
