"""The WireGuard planner: ``plan(desired, observed) -> [Operation]``, pure.

No I/O happens here, so every case (fresh host, drift repaired, peer that
left, changed endpoint, stale wireguard-go) is a table test. An operation is a
small frozen value whose ``str`` is one readable line, which is what
``ztos agent plan`` prints; the executor in ``reconcile`` applies them.

Order is fixed and documented so plans are stable and diffs readable:
interface, private key, listen port, MTU, addresses, link up, peers, routes.
Within a kind, additions come before removals (make before break): a moved
allowed IP is taken by the new peer before the old one goes, and an IPv4
address is replaced without the device ever having none (the kernel flushes a
device's IPv4 routes when its last IPv4 address goes).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

from ztos.dataplane.state import (
    Backend,
    InterfaceSpec,
    ObservedInterface,
    ObservedPeer,
    PeerSpec,
    normalize_endpoint,
    normalize_interface_address,
    normalize_network,
    short_key,
)


@dataclass(frozen=True)
class CreateInterface:
    interface: str
    backend: Backend

    def __str__(self) -> str:
        return f"+ interface {self.interface} ({self.backend})"


@dataclass(frozen=True)
class DeleteInterface:
    interface: str
    reason: str

    def __str__(self) -> str:
        return f"- interface {self.interface} ({self.reason})"


@dataclass(frozen=True)
class SetPrivateKey:
    interface: str
    path: str
    public_key: str | None

    def __str__(self) -> str:
        shown = short_key(self.public_key) if self.public_key else "?"
        return f"~ private key {self.path} (public {shown})"


@dataclass(frozen=True)
class SetListenPort:
    interface: str
    old: int | None
    new: int

    def __str__(self) -> str:
        return f"~ listen-port {_or_dash(self.old)} -> {self.new}"


@dataclass(frozen=True)
class SetMtu:
    interface: str
    old: int | None
    new: int

    def __str__(self) -> str:
        return f"~ mtu {_or_dash(self.old)} -> {self.new}"


@dataclass(frozen=True)
class SetUp:
    interface: str

    def __str__(self) -> str:
        return f"~ link {self.interface} up"


@dataclass(frozen=True)
class AddAddress:
    interface: str
    address: str

    def __str__(self) -> str:
        return f"+ address {self.address}"


@dataclass(frozen=True)
class RemoveAddress:
    interface: str
    address: str

    def __str__(self) -> str:
        return f"- address {self.address}"


@dataclass(frozen=True)
class AddPeer:
    interface: str
    peer: PeerSpec

    def __str__(self) -> str:
        return f"+ peer {_describe_peer(self.peer)}"


@dataclass(frozen=True)
class UpdatePeer:
    interface: str
    peer: PeerSpec
    changed: tuple[str, ...]

    def __str__(self) -> str:
        return f"~ peer {_describe_peer(self.peer)} (changed: {', '.join(self.changed)})"


@dataclass(frozen=True)
class RemovePeer:
    interface: str
    public_key: str

    def __str__(self) -> str:
        return f"- peer {short_key(self.public_key)}"


@dataclass(frozen=True)
class AddRoute:
    interface: str
    prefix: str

    def __str__(self) -> str:
        return f"+ route {self.prefix} dev {self.interface}"


@dataclass(frozen=True)
class RemoveRoute:
    interface: str
    prefix: str

    def __str__(self) -> str:
        return f"- route {self.prefix} dev {self.interface}"


Operation: TypeAlias = (
    CreateInterface
    | DeleteInterface
    | SetPrivateKey
    | SetListenPort
    | SetMtu
    | SetUp
    | AddAddress
    | RemoveAddress
    | AddPeer
    | UpdatePeer
    | RemovePeer
    | AddRoute
    | RemoveRoute
)


def plan(
    desired: InterfaceSpec, observed: ObservedInterface, *, public_key: str | None = None
) -> list[Operation]:
    """The operations that turn ``observed`` into ``desired``; ``[]`` when converged.

    ``public_key`` is the public half of the key in ``desired.private_key_path``
    (the reconciler derives it; the planner reads no files). Without it the key
    is set only when the device has none.
    """
    if not observed.exists:
        created = CreateInterface(desired.name, observed.backend)
        return [created, *_plan_fresh(desired, observed, public_key)]
    if not observed.controllable:
        return [
            DeleteInterface(desired.name, "no WireGuard process answers for it"),
            CreateInterface(desired.name, observed.backend),
            *_plan_fresh(desired, observed, public_key),
        ]
    return _plan_existing(desired, observed, public_key)


def _plan_fresh(
    desired: InterfaceSpec, observed: ObservedInterface, public_key: str | None
) -> list[Operation]:
    """Everything after creating the device: plan against a bare, down device."""
    bare = ObservedInterface(name=desired.name, exists=True, backend=observed.backend, controllable=True)
    return _plan_existing(desired, bare, public_key)


def _plan_existing(
    desired: InterfaceSpec, observed: ObservedInterface, public_key: str | None
) -> list[Operation]:
    return [
        *_key_ops(desired, observed, public_key),
        *_port_ops(desired, observed),
        *_mtu_ops(desired, observed),
        *_address_ops(desired, observed),
        *_up_ops(desired, observed),
        *_peer_ops(desired, observed),
        *_route_ops(desired, observed),
    ]


def _key_ops(desired: InterfaceSpec, observed: ObservedInterface, public_key: str | None) -> list[Operation]:
    known = observed.public_key
    stale = known is None or (public_key is not None and public_key != known)
    return [SetPrivateKey(desired.name, desired.private_key_path, public_key)] if stale else []


def _port_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    if observed.listen_port == desired.listen_port:
        return []
    return [SetListenPort(desired.name, observed.listen_port, desired.listen_port)]


def _mtu_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    if observed.mtu == desired.mtu:
        return []
    return [SetMtu(desired.name, observed.mtu, desired.mtu)]


def _up_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    return [] if observed.up else [SetUp(desired.name)]


def _address_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    want = {normalize_interface_address(a) for a in desired.addresses}
    have = {normalize_interface_address(a) for a in observed.addresses}
    return [
        *(AddAddress(desired.name, a) for a in sorted(want - have, key=_ip_order)),
        *(RemoveAddress(desired.name, a) for a in sorted(have - want, key=_ip_order)),
    ]


def _route_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    want = {normalize_network(r) for r in desired.routes}
    have = {normalize_network(r) for r in observed.routes}
    return [
        *(AddRoute(desired.name, r) for r in sorted(want - have, key=_ip_order)),
        *(RemoveRoute(desired.name, r) for r in sorted(have - want, key=_ip_order)),
    ]


def _peer_ops(desired: InterfaceSpec, observed: ObservedInterface) -> list[Operation]:
    ops: list[Operation] = []
    for peer in sorted(desired.peers, key=lambda p: p.public_key):
        current = observed.peer(peer.public_key)
        changed = peer_changes(peer, current) if current else ()
        if current is None:
            ops.append(AddPeer(desired.name, peer))
        elif changed:
            ops.append(UpdatePeer(desired.name, peer, changed))
    wanted = {p.public_key for p in desired.peers}
    gone = sorted(p.public_key for p in observed.peers if p.public_key not in wanted)
    return [*ops, *(RemovePeer(desired.name, key) for key in gone)]


def peer_changes(desired: PeerSpec, observed: ObservedPeer) -> tuple[str, ...]:
    """Names of the fields that differ; an unset desired endpoint accepts any."""
    changes = []
    if _networks(desired.allowed_ips) != _networks(observed.allowed_ips):
        changes.append("allowed-ips")
    if desired.endpoint is not None and (
        observed.endpoint is None
        or normalize_endpoint(desired.endpoint) != normalize_endpoint(observed.endpoint)
    ):
        changes.append("endpoint")
    if desired.persistent_keepalive != observed.persistent_keepalive:
        changes.append("keepalive")
    return tuple(changes)


def _networks(cidrs: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_network(c) for c in cidrs)


def _describe_peer(peer: PeerSpec) -> str:
    allowed = ",".join(sorted(_networks(peer.allowed_ips), key=_ip_order)) or "(none)"
    text = f"{short_key(peer.public_key)} allowed {allowed}"
    if peer.endpoint is not None:
        text += f" endpoint {normalize_endpoint(peer.endpoint)}"
    if peer.persistent_keepalive:
        text += f" keepalive {peer.persistent_keepalive}"
    return text


def _ip_order(cidr: str) -> tuple[int, int, int]:
    """Sort IPv4 before IPv6, then numerically (``10.0.0.9`` before ``10.0.0.10``)."""
    iface = ipaddress.ip_interface(cidr)
    return iface.version, int(iface.ip), iface.network.prefixlen


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
