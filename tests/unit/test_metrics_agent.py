"""What an agent reports after a pass: parsing link counters, peers, tenants, reconcile timing."""

from __future__ import annotations

import pytest

from ztos.agent.metrics import (
    LinkCounters,
    MetricsReporter,
    ReconcileCounters,
    parse_net_dev,
    peer_counters,
    tenant_counters,
)
from ztos.dataplane import Backend, ObservedInterface, ObservedPeer
from ztos.netmap import NodeMap

NET_DEV = """\
Inter-|   Receive                                    |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier
    lo: 1296 16 0 0 0 0 0 0 1296 16 0 0 0 0 0 0
zt-v100: 123456 789 0 0 0 0 0 0 654321 987 0 0 0 0 0 0
  eth0: 1 2 3
"""
NO_EXTRAS = {"gateway_addresses": [], "remote_vteps": [], "workloads": []}
KEY_H2 = "aDJoMmgyaDJoMmgyaDJoMmgyaDJoMmgyaDJoMmgyaDI="
KEY_STRANGER = "c3RyYW5nZXJzdHJhbmdlcnN0cmFuZ2Vyc3RyYW5nZXI="


def test_parse_net_dev() -> None:
    links = parse_net_dev(NET_DEV)
    assert links == {
        "lo": LinkCounters(1296, 16, 1296, 16),
        "zt-v100": LinkCounters(123456, 789, 654321, 987),
    }


def node_map() -> NodeMap:
    return NodeMap.model_validate(
        {
            "name": "h1",
            "network": "default",
            "overlay_ipv6": "fd00::1",
            "overlay_ipv4": "100.64.0.1",
            "addresses": ["fd00::1/128"],
            "routes": [],
            "listen_port": 51820,
            "underlay_mtu": 1500,
            "peers": [
                {
                    "name": "h2",
                    "public_key": KEY_H2,
                    "endpoint": "[2001:db8::2]:51820",
                    "allowed_ips": ["fd00::2/128"],
                    "overlay_ipv6": "fd00::2",
                    "overlay_ipv4": "100.64.0.2",
                    "underlay_mtu": 1500,
                }
            ],
            "tenants": [
                {"name": name, "vni": vni, "gateway_mac": "02:00:00:00:00:01", **NO_EXTRAS}
                for name, vni in (("blue", 100), ("red", 101))
            ],
        }
    )


def observed() -> ObservedInterface:
    return ObservedInterface(
        name="ztos0",
        exists=True,
        backend=Backend.USERSPACE,
        peers=(
            ObservedPeer(KEY_H2, None, (), last_handshake=995.0, rx_bytes=10, tx_bytes=20),
            ObservedPeer(KEY_STRANGER, None, (), last_handshake=None, rx_bytes=0, tx_bytes=0),
        ),
    )


def test_peers_are_named_from_the_node_map() -> None:
    peers = peer_counters(observed(), node_map(), now=1000.0)
    assert [(p.peer, p.rx_bytes, p.tx_bytes, p.handshake_age_seconds) for p in peers] == [
        ("h2", 10, 20, 5.0),
        (KEY_STRANGER, 0, 0, None),
    ]
    assert peers[0].rx_packets is None, "wireguard-go counts bytes only"


def test_tenants_from_their_vxlan_devices() -> None:
    tenants = tenant_counters(node_map(), parse_net_dev(NET_DEV))
    assert [(t.tenant, t.vni, t.rx_bytes, t.tx_packets) for t in tenants] == [("blue", 100, 123456, 987)]


def test_reconcile_timing_counts_failures() -> None:
    ticks = iter([0.0, 0.5, 1.0, 3.0])
    counters = ReconcileCounters(clock=lambda: next(ticks))
    with counters.timing():
        pass
    assert (counters.last_seconds, counters.errors_total) == (0.5, 0)
    with pytest.raises(RuntimeError), counters.timing():
        raise RuntimeError("step failed")
    assert (counters.last_seconds, counters.errors_total) == (2.0, 1)


def test_report_puts_it_together() -> None:
    reporter = MetricsReporter(
        "ztos0", 2.0, observe_interface=lambda _: observed(), read_links=lambda: parse_net_dev(NET_DEV)
    )
    report = reporter.report(node_map())
    assert report.interval_seconds == 2.0 and len(report.peers) == 2 and report.tenants[0].tenant == "blue"
