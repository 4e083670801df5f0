"""Prometheus text rendered from the metrics view (custom collector, own registry)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from test_metrics_board import Clock, node, report

from ztos.controller.metrics import MetricsBoard, TenantCounters, metrics_view, render_prometheus
from ztos.model import NodeStatus


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_gauges_and_labels() -> None:
    clock = Clock()
    board = MetricsBoard(clock=clock)
    tenants = [TenantCounters(tenant="blue", vni=100, rx_bytes=7, tx_bytes=9, rx_packets=1, tx_packets=2)]
    board.put("h1", report(1000, 2000, reconcile_errors_total=3, tenants=tenants))
    clock.now += 1
    text = render_prometheus(metrics_view(board, [node("h1"), node("h2"), node("h3", NodeStatus.REVOKED)]))
    got = samples(text.decode())
    assert got[("ztos_peer_rx_bytes_total", (("node", "h1"), ("peer", "h2")))] == 1000
    assert got[("ztos_peer_tx_bytes_total", (("node", "h1"), ("peer", "h2")))] == 2000
    assert got[("ztos_peer_handshake_age_seconds", (("node", "h1"), ("peer", "h2")))] == 4.0
    assert got[("ztos_node_up", (("node", "h1"),))] == 1
    assert got[("ztos_node_up", (("node", "h2"),))] == 0
    assert got[("ztos_node_up", (("node", "h3"),))] == 0
    assert got[("ztos_reconcile_seconds", (("node", "h1"),))] == 0.25
    assert got[("ztos_reconcile_errors_total", (("node", "h1"),))] == 3
    assert got[("ztos_tenant_rx_bytes_total", (("node", "h1"), ("tenant", "blue")))] == 7
    assert got[("ztos_tenant_tx_packets_total", (("node", "h1"), ("tenant", "blue")))] == 2
    assert ("ztos_reconcile_seconds", (("node", "h2"),)) not in got, "silent nodes have no figures"
    assert not any(name == "ztos_peer_rx_packets_total" for name, _ in got), "wireguard-go counts no packets"
    assert b"# TYPE ztos_peer_rx_bytes_total counter" in text


def test_label_values_are_escaped() -> None:
    board = MetricsBoard(clock=Clock())
    board.put("h1", report(1, 2, peer='we"ird\\peer'))
    text = render_prometheus(metrics_view(board, [node("h1")])).decode()
    assert samples(text)[("ztos_peer_rx_bytes_total", (("node", "h1"), ("peer", 'we"ird\\peer')))] == 1
