"""Desired and observed state of one WireGuard interface, as plain frozen data.

The agent builds an ``InterfaceSpec`` from the controller's node map; the
observer reads an ``ObservedInterface`` from the host; the planner diffs the two.
Keeping both sides as immutable values (no handles, no I/O) is what makes the
planner a pure function that table tests can cover completely.

Specs are validated when built, so a bad node map fails at the edge with a
message naming the field, not half way through applying a plan. Values are kept
as given; the planner compares them in canonical form (see ``normalize_*``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from ztos.errors import InvalidInput

IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class Backend(StrEnum):
    """Who implements WireGuard for an interface."""

    KERNEL = "kernel"
    USERSPACE = "wireguard-go"


@dataclass(frozen=True)
class PeerSpec:
    """One peer as the node map wants it.

    ``endpoint`` is ``"[v6]:port"`` or ``"v4:port"``; ``None`` means "no fixed
    endpoint: keep whatever the peer roams from", so the planner leaves a learned
    endpoint alone.
    """

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    persistent_keepalive: int = 0

    def __post_init__(self) -> None:
        check_key(self.public_key, "peer public_key")
        if self.endpoint is not None:
            normalize_endpoint(self.endpoint)
        for cidr in self.allowed_ips:
            normalize_network(cidr, "allowed_ips")
        if not 0 <= self.persistent_keepalive <= 65535:
            raise InvalidInput(f"persistent_keepalive {self.persistent_keepalive} must be 0..65535 seconds")


@dataclass(frozen=True)
class InterfaceSpec:
    """The WireGuard interface one node should have, complete.

    Anything on the interface that is not here (a peer that left, an address,
    a ZTOS route) is removed by the next reconcile.
    """

    name: str
    private_key_path: str
    listen_port: int
    mtu: int
    addresses: tuple[str, ...]
    peers: tuple[PeerSpec, ...]
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_ifname(self.name)
        if not 1 <= self.listen_port <= 65535:
            raise InvalidInput(f"listen_port {self.listen_port} must be 1..65535")
        if not 1280 <= self.mtu <= 65535:
            raise InvalidInput(f"mtu {self.mtu} must be 1280..65535 (IPv6 needs 1280)")
        for cidr in self.addresses:
            normalize_interface_address(cidr)
        for cidr in self.routes:
            normalize_network(cidr, "routes")
        _check_unique_peers(self.peers)


@dataclass(frozen=True)
class ObservedPeer:
    """A peer as WireGuard reports it; ``last_handshake`` is Unix time or None."""

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    persistent_keepalive: int = 0
    last_handshake: float | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class ObservedInterface:
    """What the host has under one interface name.

    ``backend`` is the backend running the interface, or, when it does not
    exist, the one this host would use (detected at run time).
    ``controllable`` is False when a link exists but nothing answers for it
    (a wireguard-go that died and left its tun behind): the plan recreates it.
    ``routes`` lists only the routes ZTOS installed (marked by protocol).
    """

    name: str
    exists: bool
    backend: Backend
    controllable: bool = False
    up: bool = False
    mtu: int | None = None
    addresses: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    public_key: str | None = None
    listen_port: int | None = None
    peers: tuple[ObservedPeer, ...] = field(default=())

    @classmethod
    def absent(cls, name: str, backend: Backend) -> ObservedInterface:
        return cls(name=name, exists=False, backend=backend)

    def peer(self, public_key: str) -> ObservedPeer | None:
        return next((p for p in self.peers if p.public_key == public_key), None)


def check_ifname(name: str) -> str:
    if not IFNAME_RE.fullmatch(name) or name in (".", ".."):  # the kernel refuses these two
        raise InvalidInput(
            f"interface name {name!r} must be 1-15 characters of letters, digits, '_', '.', '-' "
            "(not '.' or '..')"
        )
    return name


def check_key(value: str, what: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} {value!r} is not base64") from exc
    if len(raw) != 32:
        raise InvalidInput(f"{what} must decode to 32 bytes, got {len(raw)}")
    return value


def normalize_network(cidr: str, what: str = "prefix") -> str:
    """``"fd00:0::1/64"`` -> ``"fd00::/64"``; host bits are dropped, as WireGuard does."""
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError as exc:
        raise InvalidInput(f"{what}: {cidr!r} is not a CIDR prefix") from exc


def normalize_interface_address(cidr: str) -> str:
    """``"FD00::1/128"`` -> ``"fd00::1/128"``; a bare address gets a host prefix."""
    try:
        return str(ipaddress.ip_interface(cidr))
    except ValueError as exc:
        raise InvalidInput(f"addresses: {cidr!r} is not ADDRESS/PREFIXLEN") from exc


def normalize_endpoint(endpoint: str) -> str:
    """``"[2001:DB8::0002]:51820"`` -> ``"[2001:db8::2]:51820"``."""
    host, sep, port = endpoint.rpartition(":")
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError as exc:
        raise InvalidInput(f"endpoint {endpoint!r} must be ADDRESS:PORT or [IPv6]:PORT") from exc
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"endpoint {endpoint!r} needs a port 1..65535")
    if address.version == 6 and not host.startswith("["):
        raise InvalidInput(f"endpoint {endpoint!r}: write an IPv6 address as [ADDRESS]:PORT")
    if address.version == 6:
        return f"[{address}]:{int(port)}"
    return f"{address}:{int(port)}"


def short_key(value: str) -> str:
    """``"AbCdEfGh…"``: enough to tell peers apart in a printed plan or a log line."""
    return value[:8] + "…"


def _check_unique_peers(peers: tuple[PeerSpec, ...]) -> None:
    """WireGuard keeps one peer per key and one owner per allowed prefix.

    A prefix claimed by two peers would move back and forth on every pass and
    the plan would never converge, so it is refused here.
    """
    keys: set[str] = set()
    owners: dict[str, str] = {}
    for peer in peers:
        if peer.public_key in keys:
            raise InvalidInput(f"peer {peer.public_key} is listed twice")
        keys.add(peer.public_key)
        for prefix in {normalize_network(cidr) for cidr in peer.allowed_ips}:
            if prefix in owners:
                raise InvalidInput(
                    f"allowed IP {prefix} is given to both {owners[prefix]} and {peer.public_key}"
                )
            owners[prefix] = peer.public_key
