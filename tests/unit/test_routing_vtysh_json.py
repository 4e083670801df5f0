"""vtysh JSON parsers, on real FRR 8.4 output captured from the 3-host integration lab.

``tests/golden/frr/vtysh_*`` are what host 1 of that lab printed (VNI 100,
VTEPs 198.51.100.1-3, workload MACs 02:00:00:00:10:0N); ``*_down`` is host 3
after the other two stopped. The inline JSON covers shapes the lab does not
produce (MAC+IP routes, an uptime).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ztos.errors import ToolError
from ztos.routing import evpn
from ztos.routing.evpn import BgpPeer, EvpnMac, EvpnRoute, EvpnVni

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "frr"
VTEP1, VTEP2, VTEP3 = "198.51.100.1", "198.51.100.2", "198.51.100.3"


def captured(name: str) -> str:
    return (GOLDEN / f"vtysh_{name}").read_text()


def test_neighbors_established_and_down() -> None:
    up = evpn.parse_neighbors(captured("show_bgp_neighbors.json"))
    assert [(p.address, p.remote_as, p.established, p.prefixes_received) for p in up] == [
        ("2001:db8::2", 65000, True, 2),
        ("2001:db8::3", 65000, True, 2),
    ]
    down = evpn.parse_neighbors(captured("show_bgp_neighbors_down.json"))
    assert {(p.address, p.state, p.established, p.uptime_ms) for p in down} == {
        ("2001:db8::1", "Idle", False, 0),
        ("2001:db8::2", "Idle", False, 0),
    }


def test_neighbor_uptime_only_when_established() -> None:
    text = json.dumps(
        {
            "fd00::2": {"remoteAs": 65001, "bgpState": "Established", "bgpTimerUpMsec": 42000},
            "fd00::3": {"remoteAs": 65001, "bgpState": "Active", "bgpTimerUpMsec": 9000},
        }
    )
    assert evpn.parse_neighbors(text) == (
        BgpPeer("fd00::2", 65001, "Established", 42000, 0),
        BgpPeer("fd00::3", 65001, "Active", 0, 0),
    )


def test_type3_routes_carry_vni_from_pmsi_and_originator() -> None:
    routes = evpn.parse_routes(captured("show_evpn_route_multicast.json"), 3)
    assert routes == (
        EvpnRoute(3, f"{VTEP1}:2", 100, VTEP1, local=True),
        EvpnRoute(3, f"{VTEP2}:2", 100, VTEP2, peer="2001:db8::2"),
        EvpnRoute(3, f"{VTEP3}:2", 100, VTEP3, peer="2001:db8::3"),
    )


def test_type2_routes_carry_vni_mac_and_next_hop() -> None:
    routes = evpn.parse_routes(captured("show_evpn_route_macip.json"), 2)
    assert [(r.vni, r.mac, r.vtep, r.local, r.peer) for r in routes] == [
        (100, "02:00:00:00:10:01", VTEP1, True, None),
        (100, "02:00:00:00:10:02", VTEP2, False, "2001:db8::2"),
        (100, "02:00:00:00:10:03", VTEP3, False, "2001:db8::3"),
    ]
    assert evpn.parse_routes(captured("show_evpn_route_macip.json"), 3) == (), "filtered by type"


def test_mac_ip_route_and_non_best_paths() -> None:
    prefix = "[2]:[0]:[48]:[02:00:00:00:00:02]:[32]:[192.0.2.2]"

    def path(best: bool, hop: str) -> dict[str, object]:
        return {
            "VNI": "200",
            "bestpath": {"overall": best},
            "nexthops": [{"ip": hop}],
            "peer": {"peerId": "fd00::2"},
        }

    table = {
        "10.0.0.2:3": {
            "rd": "10.0.0.2:3",
            prefix: {
                "routeType": 2,
                "mac": "02:00:00:00:00:02",
                "ip": "192.0.2.2",
                "paths": [[path(True, "10.0.0.2")], [path(False, "10.0.0.9")]],
            },
        },
        "numPrefix": 1,
    }
    assert evpn.parse_routes(json.dumps(table), 2) == (
        EvpnRoute(2, "10.0.0.2:3", 200, "10.0.0.2", "02:00:00:00:00:02", "192.0.2.2", False, "fd00::2"),
    )


def test_vnis_and_macs() -> None:
    assert evpn.parse_vnis(captured("show_evpn_vni_detail.json")) == (
        EvpnVni(100, "L2", "ztfr080a-vx", VTEP1, 3, (VTEP2, VTEP3)),
    )
    assert evpn.parse_macs(captured("show_evpn_mac_vni.json")) == (
        EvpnMac("02:00:00:00:10:01", "local", "ztfr080a-wp", None),
        EvpnMac("02:00:00:00:10:02", "remote", None, VTEP2),
        EvpnMac("02:00:00:00:10:03", "remote", None, VTEP3),
    )


def test_brief_vni_form_is_accepted_too() -> None:
    brief = {"100": {"vni": 100, "type": "L2", "vxlanIf": "vx", "numMacs": 1, "remoteVteps": [VTEP3, VTEP2]}}
    assert evpn.parse_vnis(json.dumps(brief)) == (EvpnVni(100, "L2", "vx", None, 1, (VTEP2, VTEP3)),)


@pytest.mark.parametrize(
    "parse",
    [evpn.parse_neighbors, evpn.parse_vnis, evpn.parse_macs, lambda text: evpn.parse_routes(text, 2)],
)
def test_empty_output_means_nothing_configured(parse: Callable[[str], tuple[object, ...]]) -> None:
    """FRR prints nothing (not ``{}``) for EVPN commands when BGP/EVPN is not configured."""
    assert parse("") == ()
    assert parse("{}") == ()


def test_non_json_output_is_a_tool_error_with_frr_text() -> None:
    with pytest.raises(ToolError, match="% Unknown command: show bgp"):
        evpn.parse_neighbors("% Unknown command: show bgp neighbours json")
