"""frr.conf rendering (golden files), spec validation, and the running-config delta.

Golden files live in ``tests/golden/frr/``; after an intended change to the
rendering, regenerate them with ``ZTOS_UPDATE_GOLDEN=1 pytest tests/unit/test_routing_frrconf.py``
and review the diff. ``vtysh_show_running_config.txt`` is real FRR 8.4 output
(captured from the integration lab), so the parser is tested on what FRR prints.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ztos.errors import InvalidInput
from ztos.routing import frrconf
from ztos.routing.frrconf import BgpConfig, NeighborConfig
from ztos.routing.spec import BgpNeighbor, FrrSpec

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "frr"

IBGP = FrrSpec(
    instance="host-a",
    asn=65000,
    router_id="10.20.0.10",
    # deliberately unsorted, mixed families, non-canonical spelling
    neighbors=(
        BgpNeighbor("FD12:3456:789A::0003", description="host c"),
        BgpNeighbor("10.20.0.12"),
        BgpNeighbor("fd12:3456:789a::2", description="  host   b "),
    ),
    config_dir="/var/lib/ztos/frr/host-a",
)
EBGP_NO_EVPN = FrrSpec(
    instance="edge_1",
    asn=4_200_000_001,
    router_id="192.0.2.1",
    neighbors=(BgpNeighbor("2001:db8::2", remote_as=65000, description="core"),),
    evpn=False,
    config_dir="/srv/frr/",
)
LONELY = FrrSpec(instance="solo", asn=1, router_id="10.0.0.1", neighbors=(), config_dir="/run/ztos/frr")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZTOS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"rendering differs from {path} (ZTOS_UPDATE_GOLDEN=1 to update)"


@pytest.mark.parametrize(
    ("spec", "golden"),
    [(IBGP, "ibgp_evpn.conf"), (EBGP_NO_EVPN, "ebgp_no_evpn.conf"), (LONELY, "no_neighbors.conf")],
)
def test_render_matches_golden(spec: FrrSpec, golden: str) -> None:
    check_golden(golden, frrconf.render(spec))


def test_boot_config_is_the_head_of_the_full_config() -> None:
    boot = frrconf.render_boot(IBGP)
    check_golden("boot.conf", boot)
    assert frrconf.render(IBGP).startswith(boot)
    assert "router bgp" not in boot, "zebra reads the boot file too and knows no BGP commands"


def test_render_is_deterministic_whatever_the_neighbor_order() -> None:
    shuffled = replace(IBGP, neighbors=tuple(reversed(IBGP.neighbors)))
    assert frrconf.render(shuffled) == frrconf.render(IBGP)


def test_render_has_the_lines_evpn_needs() -> None:
    text = frrconf.render(IBGP)
    for line in (
        "frr defaults datacenter",
        " bgp router-id 10.20.0.10",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " neighbor fd12:3456:789a::2 remote-as internal",
        " neighbor fd12:3456:789a::2 timers connect 1",
        "  neighbor fd12:3456:789a::3 activate",
        "  advertise-all-vni",
        "log file /var/lib/ztos/frr/host-a/frr.log",
    ):
        assert line in text.splitlines()
    assert "l2vpn" not in frrconf.render(EBGP_NO_EVPN)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"asn": 0}, "asn 0 is out of range"),
        ({"asn": 4_294_967_296}, "out of range: an AS number is 1..4294967295"),
        ({"asn": True}, "asn True is out of range"),
        ({"router_id": "2001:db8::1"}, "must be an IPv4 address"),
        ({"router_id": "0.0.0.0"}, "must be a unicast IPv4 address"),  # noqa: S104
        ({"router_id": "10.0.0.256"}, "must be an IPv4 address"),
        ({"instance": ""}, "instance name '' must be"),
        ({"instance": "a/b"}, "instance name 'a/b' must be"),
        ({"instance": "x" * 33}, "1-32 characters"),
        ({"config_dir": ""}, "must be an absolute path"),
        ({"config_dir": "relative/dir"}, "must be an absolute path"),
        ({"config_dir": "/tmp/a b"}, "without spaces"),
        ({"neighbors": (BgpNeighbor("fd00::1"), BgpNeighbor("FD00::0001"))}, "fd00::1 is listed twice"),
        ({"neighbors": (BgpNeighbor("10.0.0.300"),)}, "'10.0.0.300' is not an IPv4 or IPv6 address"),
        ({"neighbors": (BgpNeighbor("fd00::/64"),)}, "is not an IPv4 or IPv6 address"),
        ({"neighbors": (BgpNeighbor("fe80::1"),)}, "non-link-local"),
        ({"neighbors": (BgpNeighbor("ff02::1"),)}, "must be a unicast"),
        ({"neighbors": (BgpNeighbor("10.20.0.10"),)}, "own router-id"),
        ({"neighbors": (BgpNeighbor("fd00::1", remote_as=0),)}, "remote_as of neighbor fd00::1 0"),
        ({"neighbors": (BgpNeighbor("fd00::1", remote_as=2**32),)}, "out of range"),
        ({"neighbors": (BgpNeighbor("fd00::1", description="a\nrouter bgp 1"),)}, "printable ASCII"),
        ({"neighbors": (BgpNeighbor("fd00::1", description="x" * 81),)}, "at most 80"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        frrconf.render(replace(IBGP, **change))  # type: ignore[arg-type]


def test_extreme_but_valid_values_render() -> None:
    spec = replace(IBGP, asn=4_294_967_295, neighbors=(BgpNeighbor("fd00::1", remote_as=1),))
    assert "router bgp 4294967295" in frrconf.render(spec)
    assert " neighbor fd00::1 remote-as 1" in frrconf.render(spec)


# --- running config --------------------------------------------------------------


def test_parse_real_running_config() -> None:
    parsed = frrconf.parse_running((GOLDEN / "vtysh_show_running_config.txt").read_text())
    assert parsed == BgpConfig(
        asn=65000,
        router_id="198.51.100.1",
        neighbors=(
            NeighborConfig("2001:db8::2", "internal", "h2"),
            NeighborConfig("2001:db8::3", "internal", "h3"),
        ),
        evpn=True,
        activated=("2001:db8::2", "2001:db8::3"),
    )


def test_rendered_config_reads_back_as_its_summary() -> None:
    """What FRR prints is (for the owned parts) what we render: drift detection relies on it."""
    for spec in (IBGP, EBGP_NO_EVPN, LONELY):
        assert frrconf.parse_running(frrconf.render(spec)) == frrconf.summarize(spec)


def test_parse_ignores_other_vrfs_and_empty_text() -> None:
    text = "router bgp 65001 vrf tenant\n neighbor 10.0.0.9 remote-as external\nexit\n"
    assert frrconf.parse_running(text) == BgpConfig(None, None, (), False, ())
    assert frrconf.parse_running("") == BgpConfig(None, None, (), False, ())


def running(spec: FrrSpec) -> BgpConfig:
    return frrconf.parse_running(frrconf.render(spec))


@pytest.mark.parametrize(
    ("now", "wanted", "lines"),
    [
        (BgpConfig(None, None, (), False, ()), IBGP, []),
        (running(IBGP), IBGP, []),
        (running(IBGP), replace(IBGP, asn=65001), ["no router bgp 65000"]),
        (running(IBGP), replace(IBGP, evpn=False), ["no router bgp 65000"]),
        (running(EBGP_NO_EVPN), replace(EBGP_NO_EVPN, evpn=True), []),
        (running(IBGP), replace(IBGP, router_id="10.20.0.11"), []),
        (
            running(IBGP),
            replace(IBGP, neighbors=IBGP.neighbors[1:]),
            ["router bgp 65000", " no neighbor fd12:3456:789a::3", "exit"],
        ),
        (
            running(IBGP),
            replace(IBGP, neighbors=(BgpNeighbor("10.20.0.12", remote_as=65099), *IBGP.neighbors[::2])),
            ["router bgp 65000", " no neighbor 10.20.0.12", "exit"],
        ),
        (
            running(IBGP),
            replace(IBGP, neighbors=(*IBGP.neighbors[:2], BgpNeighbor("fd12:3456:789a::2"))),
            ["router bgp 65000", " no neighbor fd12:3456:789a::2 description", "exit"],
        ),
        (running(IBGP), replace(IBGP, neighbors=(*IBGP.neighbors, BgpNeighbor("fd00::9"))), []),
    ],
    ids=[
        "nothing-running",
        "same",
        "asn-changed",
        "evpn-off",
        "evpn-on-is-additive",
        "router-id-is-overwritten",
        "neighbor-gone",
        "remote-as-changed",
        "description-dropped",
        "neighbor-added",
    ],
)
def test_removals(now: BgpConfig, wanted: FrrSpec, lines: list[str]) -> None:
    assert frrconf.removals(now, wanted) == lines
