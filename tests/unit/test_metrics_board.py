"""The in-memory metrics board and the pure rate arithmetic behind it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from ztos.controller.metrics import (
    CounterSet,
    MetricsBoard,
    MetricsReport,
    PeerCounters,
    Point,
    TenantCounters,
    delta,
    is_up,
    metrics_view,
    rate_pair,
    rates,
)
from ztos.model import Node, NodeStatus

KEY = "x" * 43 + "="


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def node(name: str, status: NodeStatus = NodeStatus.ACTIVE) -> Node:
    return Node(
        name=name,
        wg_public_key="YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU=",
        overlay_ipv6="fd00::1",
        overlay_ipv4="100.64.0.1",
        cert_serial="ab",
        status=status,
        enrolled_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def report(
    rx: int, tx: int, *, peer: str = "h2", handshake: float | None = 3.0, **extra: object
) -> MetricsReport:
    peers = [PeerCounters(peer=peer, rx_bytes=rx, tx_bytes=tx, handshake_age_seconds=handshake)]
    return MetricsReport(interval_seconds=2.0, reconcile_seconds=0.25, peers=peers, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("older", "newer", "grown"),
    [(100, 150, 50), (0, 0, 0), (150, 100, 100), (2**64 - 1, 5, 5)],
    ids=["grew", "idle", "reset counts from zero", "wrapped"],
)
def test_delta(older: int, newer: int, grown: int) -> None:
    assert delta(older, newer) == grown


def test_rates_per_second_and_missing_readings() -> None:
    assert rates((0, 1000), (500, 3000), 2.0) == (250.0, 1000.0)
    assert rates(None, (500, 3000), 2.0) == (250.0, 1500.0), "a new peer counts from zero"
    assert rates((500, 3000), None, 2.0) == (0.0, 0.0)
    assert rates((0, 0), (10, 10), 0.0) == (0.0, 0.0)


def point(at: float, rx: int = 0) -> Point:
    counters = CounterSet.build([("h2", rx, rx)])
    return Point(at, counters, CounterSet.build([]), 0.0)


def test_rate_pair_spans_at_least_a_second() -> None:
    assert rate_pair([point(0)]) is None
    points = [point(0), point(5), point(9.8), point(10)]
    older, newer = rate_pair(points) or (None, None)
    assert (older and older.at, newer and newer.at) == (5, 10)
    older, _ = rate_pair([point(9.8), point(10)]) or (None, None)
    assert older is not None and older.at == 9.8, "the oldest when nothing spans a second"


def test_counter_sets_share_their_index_while_peers_stay() -> None:
    first = CounterSet.build([("a", 1, 2), ("b", 3, 4)])
    second = CounterSet.build([("a", 5, 6), ("b", 7, 8)], first)
    third = CounterSet.build([("b", 9, 9)], second)
    assert second.index is first.index and third.index is not first.index
    assert second.get("b") == (7, 8) and second.get("c") is None and third.labels() == ["b"]


def test_history_is_thinned_to_one_point_per_step_and_expires() -> None:
    clock = Clock()
    board = MetricsBoard(history_seconds=60, step_seconds=5, clock=clock)
    for i in range(100):  # a pass every second for 100 s
        board.put("h1", report(i * 1000, i * 2000))
        clock.now += 1
    points = board.series()["h1"].points
    assert len(points) <= 60 / 5 + 2
    assert all(b.at - a.at >= 5 for a, b in itertools.pairwise(points[:-1]))
    assert points[-1].at == clock.now - 1, "the newest report is always kept"
    assert points[0].at >= clock.now - 1 - 60 - 5


def test_traffic_of_a_peer_newer_than_the_first_point_shows_in_the_history() -> None:
    """The lab race: first report without peers, then the peer's baseline is replaced."""
    clock = Clock()
    board = MetricsBoard(step_seconds=5, clock=clock)
    board.put("h1", MetricsReport(interval_seconds=1.0))  # the agent's first pass: no peers yet
    for at, tx in ((1, 700), (2, 700), (3, 3_000_000), (4, 7_000_000), (6, 7_000_000)):
        clock.now += at - (clock.now - 1_700_000_000.0)
        board.put("h1", report(tx, tx))
    view = metrics_view(board, [node("h1")])
    assert max(p.tx_rate for p in view.nodes[0].history) > 1_000_000


def test_nodes_silent_for_the_whole_history_leave_the_board() -> None:
    clock = Clock()
    board = MetricsBoard(history_seconds=60, clock=clock)
    board.put("gone", report(1, 1))
    clock.now += 61
    board.put("h1", report(1, 1))
    assert set(board.series()) == {"h1"}


def test_view_rates_up_down_and_handshake_ages() -> None:
    clock = Clock()
    board = MetricsBoard(clock=clock)
    board.put("h1", report(0, 0, tenants=[TenantCounters(tenant="blue", vni=100, rx_bytes=0, tx_bytes=0)]))
    clock.now += 2
    tenants = [TenantCounters(tenant="blue", vni=100, rx_bytes=400, tx_bytes=200, rx_packets=4, tx_packets=2)]
    board.put("h1", report(2000, 4000, tenants=tenants))
    clock.now += 1
    view = metrics_view(board, [node("h2"), node("h1"), node("h3", NodeStatus.REVOKED)], detail=True)
    h1, h2, h3 = view.nodes
    assert [n.node for n in view.nodes] == ["h1", "h2", "h3"]
    assert h1.up and not h2.up and not h3.up
    assert (h1.rx_rate, h1.tx_rate) == (1000.0, 2000.0)
    assert h1.peers[0].handshake_age_seconds == 4.0, "age at report time plus the report's age"
    assert (h1.tenants[0].rx_rate, h1.tenants[0].tx_rate) == (200.0, 100.0)
    assert [(p.rx_rate, p.tx_rate) for p in h1.history] == [(1000.0, 2000.0)]
    assert h1.peer_history is not None and h1.peer_history["h2"][0].rx_rate == 1000.0
    assert h1.tenant_history is not None and h1.tenant_history["blue"][0].tx_rate == 100.0
    assert h2.reported_at is None and h2.peers == [] and h2.history == []


def test_node_goes_down_after_two_and_a_half_passes_and_five_seconds() -> None:
    assert is_up(100.0, 2.0, 110.0)
    assert not is_up(100.0, 2.0, 110.1)
    assert not is_up(None, 2.0, 100.0)


def test_reports_are_validated_at_the_edge() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        PeerCounters(peer="h2", rx_bytes=-1, tx_bytes=0)
    with pytest.raises(ValueError, match="less than or equal to"):
        PeerCounters(peer="h2", rx_bytes=2**64, tx_bytes=0)
    with pytest.raises(ValueError, match="Extra inputs"):
        MetricsReport.model_validate({"peers": [], "surprise": 1})
