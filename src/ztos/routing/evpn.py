"""EVPN and BGP state as plain data, parsed from vtysh's JSON.

Pure: each parser takes the text a ``show ... json`` command printed and
returns frozen dataclasses, so the adapter stays a thin shell around vtysh
and the parsing is tested against captured FRR 8.4 output without a daemon.
FRR prints nothing at all (not ``{}``) for some commands when BGP or EVPN is
not configured; every parser treats empty text as "no entries".

Which commands, and why:

* peers: ``show bgp neighbors json`` lists every configured neighbor, even
  one with no address family active (``show bgp summary`` hides those).
* routes: ``show bgp l2vpn evpn route detail type macip|multicast json`` is
  the global EVPN table; only the detail form carries the VNI of a type-2
  route, and a type-3 route's VNI is its PMSI tunnel label.
* VNIs: ``show evpn vni detail json`` (zebra) has the local VTEP address.
* MACs: ``show evpn mac vni N json`` (zebra), local and remote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ztos.errors import ToolError

ROUTE_TYPES = {2: "macip", 3: "multicast"}
# how FRR names "no peer" (the route is ours); a peer id, not a bind address
_LOCAL_PEER_IDS = (None, "(unspec)", "0.0.0.0")  # noqa: S104


@dataclass(frozen=True)
class BgpPeer:
    """One configured neighbor and its session."""

    address: str
    remote_as: int | None
    state: str  # FRR's FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
    uptime_ms: int  # time since the session came up; 0 unless Established
    prefixes_received: int  # accepted l2vpn evpn prefixes

    @property
    def established(self) -> bool:
        return self.state == "Established"


@dataclass(frozen=True)
class EvpnRoute:
    """The best path of one EVPN route: type 2 (MAC/IP) or type 3 (IMET, the flood list)."""

    route_type: int
    rd: str
    vni: int | None
    vtep: str  # type 3: the originator's VTEP; type 2: the next hop (the VTEP behind the MAC)
    mac: str | None = None  # type 2 only
    ip: str | None = None  # type 2 with an IP binding only
    local: bool = False  # originated by this router
    peer: str | None = None  # the neighbor it came from; None when local


@dataclass(frozen=True)
class EvpnVni:
    vni: int
    kind: str  # "L2" or "L3"
    vxlan_if: str
    local_vtep: str | None
    num_macs: int
    remote_vteps: tuple[str, ...]


@dataclass(frozen=True)
class EvpnMac:
    mac: str
    kind: str  # "local" or "remote"
    interface: str | None  # local MACs: the bridge port
    vtep: str | None  # remote MACs: where they live


def loads(text: str, command: str) -> Any:
    """JSON from vtysh; empty output is ``None``; anything else unparsable is a ``ToolError``."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"vtysh {command!r} printed no JSON: {text.strip()[:200]}") from exc


def parse_neighbors(text: str) -> tuple[BgpPeer, ...]:
    data = loads(text, "show bgp neighbors json") or {}
    peers = [_peer(address, info) for address, info in data.items() if isinstance(info, dict)]
    return tuple(sorted(peers, key=lambda p: p.address))


def _peer(address: str, info: dict[str, Any]) -> BgpPeer:
    state = str(info.get("bgpState", "Unknown"))
    evpn = info.get("addressFamilyInfo", {}).get("l2VpnEvpn", {})
    remote_as = info.get("remoteAs")
    return BgpPeer(
        address=address,
        remote_as=int(remote_as) if remote_as is not None else None,
        state=state,
        uptime_ms=int(info.get("bgpTimerUpMsec", 0)) if state == "Established" else 0,
        prefixes_received=int(evpn.get("acceptedPrefixCounter", 0)),
    )


def parse_routes(text: str, route_type: int) -> tuple[EvpnRoute, ...]:
    """Best paths of ``route_type`` from the global EVPN table (``detail`` form)."""
    data = loads(text, "show bgp l2vpn evpn route detail json") or {}
    routes = [
        route
        for rd, table in data.items()
        if isinstance(table, dict)
        for prefix in table.values()
        if isinstance(prefix, dict) and prefix.get("routeType") == route_type
        for route in _best_paths(rd, prefix)
    ]
    return tuple(sorted(routes, key=lambda r: (r.vni or 0, r.vtep, r.mac or "", r.ip or "", r.rd)))


def _best_paths(rd: str, prefix: dict[str, Any]) -> list[EvpnRoute]:
    paths = [path for group in prefix.get("paths", []) for path in group]
    return [_route(rd, prefix, path) for path in paths if _is_best(path)]


def _is_best(path: dict[str, Any]) -> bool:
    best = path.get("bestpath")
    return bool(best.get("overall")) if isinstance(best, dict) else bool(best)


def _route(rd: str, prefix: dict[str, Any], path: dict[str, Any]) -> EvpnRoute:
    route_type = int(prefix["routeType"])
    nexthops = path.get("nexthops") or [{}]
    vtep = prefix.get("ip") if route_type == 3 else nexthops[0].get("ip")
    peer = path.get("peer", {}).get("peerId")
    local = bool(path.get("local")) or peer in _LOCAL_PEER_IDS
    return EvpnRoute(
        route_type=route_type,
        rd=rd,
        vni=_route_vni(path),
        vtep=str(vtep or ""),
        mac=prefix.get("mac") if route_type == 2 else None,
        ip=prefix.get("ip") if route_type == 2 else None,
        local=local,
        peer=None if local else peer,
    )


def _route_vni(path: dict[str, Any]) -> int | None:
    """Type 2 carries ``VNI``; type 3 only its PMSI label, which is the VNI for VXLAN."""
    vni = path.get("vni", path.get("VNI"))
    if vni is None:
        vni = path.get("pmsi", {}).get("label")
    return int(vni) if vni is not None else None


def parse_vnis(text: str) -> tuple[EvpnVni, ...]:
    data = loads(text, "show evpn vni detail json") or []
    rows = data if isinstance(data, list) else list(data.values())
    return tuple(sorted((_vni(row) for row in rows if isinstance(row, dict)), key=lambda v: v.vni))


def _vni(row: dict[str, Any]) -> EvpnVni:
    # FRR 8.4's detail JSON puts the remote VTEP list under "numRemoteVteps"; the brief form
    # calls it "remoteVteps". Accept either, so a fixed FRR does not break us.
    remotes = row.get("remoteVteps", row.get("numRemoteVteps", []))
    return EvpnVni(
        vni=int(row["vni"]),
        kind=str(row.get("type", "")),
        vxlan_if=str(row.get("vxlanInterface", row.get("vxlanIf", ""))),
        local_vtep=row.get("vtepIp"),
        num_macs=int(row.get("numMacs", 0)),
        remote_vteps=tuple(sorted(remotes)) if isinstance(remotes, list) else (),
    )


def parse_macs(text: str) -> tuple[EvpnMac, ...]:
    data = loads(text, "show evpn mac vni json") or {}
    macs = data.get("macs", {})
    rows = [_mac(mac, info) for mac, info in macs.items()]
    return tuple(sorted(rows, key=lambda m: m.mac))


def _mac(mac: str, info: dict[str, Any]) -> EvpnMac:
    kind = str(info.get("type", ""))
    return EvpnMac(mac=mac, kind=kind, interface=info.get("intf"), vtep=info.get("remoteVtep"))
