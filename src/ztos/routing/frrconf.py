"""Render an ``FrrSpec`` into frr.conf text, and read FRR's running config back.

Pure functions only: no files, no processes. ``render`` is the whole desired
configuration of one instance (zebra + bgpd), deterministic so it can be
compared with what is on disk and checked against golden files. The daemons
start from ``render_boot`` (the global lines only: profile, hostname, log) and
get the rest pushed through vtysh, so starting and reloading share one path.

vtysh applies a file additively: it never removes a neighbor that the file no
longer names. ``summarize``/``parse_running`` project desired and running
config onto the few things ZTOS owns (AS, router-id, neighbors, EVPN), and
``removals`` turns their difference into the ``no ...`` lines that must run
before the file. A targeted delta is used instead of ``frr-reload.py``
because Debian ships that script in a separate package, and a generic
text diff is more than this small, fixed shape of config needs.

Why the numbers: ``frr defaults datacenter`` already means keepalive 3 s,
hold 9 s and no MRAI; they are written out anyway so the file says what
runs. The connect-retry timer (default 10 s even in that profile) is cut to
1 s, so a peer that comes up is reached within a second, not ten, and the
update-group coalesce time (1 s by default) to 100 ms, so a new peer gets
this host's routes ~0.1 s after its session is up. What remains is bgpd's
own 1 s hold of peers after every config load ("config-pending"), which no
setting changes: a session comes up about 1 s after its config is pushed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ztos.errors import InvalidInput
from ztos.routing.spec import BgpNeighbor, FrrSpec

PROFILE = "datacenter"
KEEPALIVE_S = 3
HOLD_S = 9
CONNECT_RETRY_S = 1
COALESCE_MS = 100
MAX_ASN = 4_294_967_295
MAX_DESCRIPTION = 80  # FRR truncates longer neighbor descriptions
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_PATH = re.compile(r"/[A-Za-z0-9_./+@:=-]*")


@dataclass(frozen=True)
class NeighborConfig:
    """The parts of one neighbor that a reload must replace rather than add to."""

    address: str
    remote_as: str  # "internal" or the AS number as text, as FRR prints it
    description: str


@dataclass(frozen=True)
class BgpConfig:
    """What ZTOS owns in a BGP config: enough to see drift and plan removals."""

    asn: int | None  # None: no ``router bgp`` at all
    router_id: str | None
    neighbors: tuple[NeighborConfig, ...]
    evpn: bool  # ``advertise-all-vni`` is on
    activated: tuple[str, ...]  # neighbors active in l2vpn evpn


# --- validation ----------------------------------------------------------------


def validate(spec: FrrSpec) -> None:
    """Raise ``InvalidInput`` naming the first bad field of ``spec``."""
    _check_instance(spec.instance)
    _check_asn(spec.asn, "asn")
    _check_router_id(spec.router_id)
    _check_config_dir(spec.config_dir)
    seen: set[str] = set()
    for neighbor in spec.neighbors:
        address = neighbor_address(neighbor.address)
        if address in seen:
            raise InvalidInput(f"neighbor {address} is listed twice: give each peer once")
        if address == spec.router_id:
            raise InvalidInput(f"neighbor {address} is this router's own router-id")
        seen.add(address)
        if neighbor.remote_as is not None:
            _check_asn(neighbor.remote_as, f"remote_as of neighbor {address}")
        _check_description(neighbor)


def neighbor_address(text: str) -> str:
    """The canonical form FRR prints (``2001:db8::1``), or ``InvalidInput``."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"neighbor address {text!r} is not an IPv4 or IPv6 address") from exc
    if address.is_unspecified or address.is_multicast or address.is_link_local:
        raise InvalidInput(f"neighbor address {text!r} must be a unicast, non-link-local address")
    return address.compressed


def _check_instance(name: str) -> None:
    if not _INSTANCE.fullmatch(name):
        raise InvalidInput(
            f"FRR instance name {name!r} must be 1-32 characters of letters, digits, '.', '_' or '-'"
        )


def _check_asn(asn: int, what: str) -> None:
    if isinstance(asn, bool) or not isinstance(asn, int) or not 1 <= asn <= MAX_ASN:
        raise InvalidInput(f"{what} {asn!r} is out of range: an AS number is 1..{MAX_ASN}")


def _check_router_id(router_id: str) -> None:
    try:
        address = ipaddress.IPv4Address(router_id)
    except ValueError as exc:
        raise InvalidInput(
            f"router_id {router_id!r} must be an IPv4 address (the host's IPv4 overlay address / VTEP)"
        ) from exc
    if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
        raise InvalidInput(f"router_id {router_id!r} must be a unicast IPv4 address")


def _check_config_dir(config_dir: str) -> None:
    if not _PATH.fullmatch(config_dir):
        raise InvalidInput(
            f"config_dir {config_dir!r} must be an absolute path without spaces or special characters"
        )


def _check_description(neighbor: BgpNeighbor) -> None:
    text = neighbor.description
    if len(text) > MAX_DESCRIPTION or not all(" " <= char <= "~" for char in text):
        raise InvalidInput(
            f"description of neighbor {neighbor.address} must be at most {MAX_DESCRIPTION} "
            "printable ASCII characters on one line"
        )


# --- rendering -----------------------------------------------------------------


def render_boot(spec: FrrSpec) -> str:
    """The global lines every daemon reads at start (the profile must precede ``router bgp``)."""
    validate(spec)
    return "\n".join(_boot_lines(spec)) + "\n"


def render(spec: FrrSpec) -> str:
    """The complete frr.conf of ``spec``: boot lines, then ``router bgp``."""
    validate(spec)
    return "\n".join([*_boot_lines(spec), "!", *_bgp_lines(spec), "!"]) + "\n"


def _boot_lines(spec: FrrSpec) -> list[str]:
    return [
        f"! ZTOS-managed FRR instance {spec.instance}: ztosd rewrites this file, do not edit",
        f"frr defaults {PROFILE}",
        f"hostname {spec.instance}",
        f"log file {log_path(spec)}",
    ]


def _bgp_lines(spec: FrrSpec) -> list[str]:
    lines = [
        f"router bgp {spec.asn}",
        f" bgp router-id {spec.router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        f" timers bgp {KEEPALIVE_S} {HOLD_S}",
        f" coalesce-time {COALESCE_MS}",
    ]
    for neighbor in sorted_neighbors(spec):
        lines += _neighbor_lines(neighbor)
    if spec.evpn:
        lines += _evpn_lines(spec)
    return [*lines, "exit"]


def _neighbor_lines(neighbor: NeighborConfig) -> list[str]:
    lines = [f" neighbor {neighbor.address} remote-as {neighbor.remote_as}"]
    if neighbor.description:
        lines.append(f" neighbor {neighbor.address} description {neighbor.description}")
    return [*lines, f" neighbor {neighbor.address} timers connect {CONNECT_RETRY_S}"]


def _evpn_lines(spec: FrrSpec) -> list[str]:
    activate = [f"  neighbor {n.address} activate" for n in sorted_neighbors(spec)]
    return [" !", " address-family l2vpn evpn", *activate, "  advertise-all-vni", " exit-address-family"]


def log_path(spec: FrrSpec) -> str:
    return f"{spec.config_dir.rstrip('/')}/frr.log"


def sorted_neighbors(spec: FrrSpec) -> tuple[NeighborConfig, ...]:
    """Neighbors in canonical form, IPv4 before IPv6, each family in numeric order."""
    configs = [_neighbor_config(n) for n in spec.neighbors]
    return tuple(sorted(configs, key=lambda c: _address_key(c.address)))


def _neighbor_config(neighbor: BgpNeighbor) -> NeighborConfig:
    remote_as = "internal" if neighbor.remote_as is None else str(neighbor.remote_as)
    # FRR joins the words of a description with single spaces; do the same so reads compare equal
    description = " ".join(neighbor.description.split())
    return NeighborConfig(neighbor_address(neighbor.address), remote_as, description)


def _address_key(address: str) -> tuple[int, int, str]:
    """Sort key; running configs may hold non-address neighbors (peer groups), which sort last."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return 99, 0, address
    return parsed.version, int(parsed), address


# --- running config ------------------------------------------------------------


def summarize(spec: FrrSpec) -> BgpConfig:
    """The ``BgpConfig`` that FRR should report once ``render(spec)`` is applied."""
    validate(spec)
    neighbors = sorted_neighbors(spec)
    activated = tuple(n.address for n in neighbors) if spec.evpn else ()
    return BgpConfig(spec.asn, spec.router_id, neighbors, spec.evpn, activated)


def parse_running(text: str) -> BgpConfig:
    """Read the default-VRF ``router bgp`` block of ``show running-config``."""
    parser = _RunningParser()
    for line in text.splitlines():
        parser.feed(line.rstrip())
    return parser.result()


def removals(running: BgpConfig, spec: FrrSpec) -> list[str]:
    """Config lines that undo what ``running`` has and ``spec`` does not want.

    A different AS, or EVPN switched off, clears the whole BGP instance (FRR
    resets every session for those changes anyway). Otherwise a neighbor that
    is gone, or whose remote AS changed, is removed (its session restarts);
    a description that is gone is removed alone. Sessions to every other
    peer stay up: the file pushed next only repeats what they already have.
    """
    if running.asn is None:
        return []
    desired = summarize(spec)
    if running.asn != desired.asn or (running.evpn and not desired.evpn):
        return [f"no router bgp {running.asn}"]
    wanted = {n.address: n for n in desired.neighbors}
    lines = [line for n in running.neighbors for line in _neighbor_removals(n, wanted.get(n.address))]
    return [f"router bgp {running.asn}", *lines, "exit"] if lines else []


def _neighbor_removals(running: NeighborConfig, wanted: NeighborConfig | None) -> list[str]:
    if wanted is None or wanted.remote_as != running.remote_as:
        return [f" no neighbor {running.address}"]
    if running.description and not wanted.description:
        return [f" no neighbor {running.address} description"]
    return []


class _RunningParser:
    """Line-by-line state machine over FRR's running config (its layout is stable)."""

    def __init__(self) -> None:
        self.asn: int | None = None
        self.router_id: str | None = None
        self.remote_as: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self.activated: list[str] = []
        self.evpn = False
        self.block = ""  # "", "bgp" or "evpn"

    def feed(self, line: str) -> None:
        if self.block == "" and (match := re.fullmatch(r"router bgp (\d+)", line)):
            self.asn, self.block = int(match.group(1)), "bgp"
        elif self.block == "bgp":
            self._bgp(line)
        elif self.block == "evpn":
            self._evpn(line)

    def _bgp(self, line: str) -> None:
        if line == "exit":
            self.block = ""
        elif line == " address-family l2vpn evpn":
            self.block = "evpn"
        elif match := re.fullmatch(r" bgp router-id (\S+)", line):
            self.router_id = match.group(1)
        elif match := re.fullmatch(r" neighbor (\S+) remote-as (\S+)", line):
            self.remote_as[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r" neighbor (\S+) description (.*)", line):
            self.descriptions[match.group(1)] = match.group(2)

    def _evpn(self, line: str) -> None:
        if line == " exit-address-family":
            self.block = "bgp"
        elif line == "  advertise-all-vni":
            self.evpn = True
        elif match := re.fullmatch(r"  neighbor (\S+) activate", line):
            self.activated.append(match.group(1))

    def result(self) -> BgpConfig:
        neighbors = [
            NeighborConfig(address, remote_as, self.descriptions.get(address, ""))
            for address, remote_as in self.remote_as.items()
        ]
        neighbors.sort(key=lambda c: _address_key(c.address))
        activated = tuple(sorted(self.activated, key=_address_key))
        return BgpConfig(self.asn, self.router_id, tuple(neighbors), self.evpn, activated)
