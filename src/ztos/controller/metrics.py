"""Agents' traffic counters, kept in memory with a short history, and their views.

Each agent pass ends with ``PUT /api/v1/nodes/self/metrics`` (a
``MetricsReport``: cumulative byte/packet counters per WireGuard peer and per
tenant, handshake ages, the last reconcile's duration, its error count).
``MetricsBoard`` keeps, per node, the latest report and a ring of points over
the last ``history_seconds`` (10 minutes), at most one every ``step_seconds``
whatever the agents' pass rate, so memory is bounded by
nodes x peers x history/step. Like ``StatusBoard`` it is memory, not
directory: counters change on every pass, and a restarted controller shows
history again from the agents' next reports.

Times are the controller's clock when a report arrives, never the agent's, so
skewed host clocks cannot distort rates; handshake ages travel as ages for the
same reason. From the points, pure functions derive what the dashboard,
``ztos monitoring top`` and Prometheus read: rates (bytes/s; counter resets
and keys new since the older point count from zero), whether a node is up
(reported within 2.5 passes + 5 s), and rate series. ``render_prometheus`` is the
only user of prometheus-client.
"""

from __future__ import annotations

import itertools
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, Field

from ztos.model import Node, NodeStatus

MAX_COUNTER = 2**64 - 1
MAX_VNI = 2**24 - 1
HISTORY_SECONDS = 600.0
STEP_SECONDS = 5.0
RATE_MIN_SPAN = 1.0  # the latest rate spans at least this much time
UP_SLACK_SECONDS = 5.0
UP_PASSES = 2.5

CounterValue = Annotated[int, Field(ge=0, le=MAX_COUNTER)]


# --- what agents send ------------------------------------------------------------------------


class PeerCounters(BaseModel):
    """One WireGuard peer, as seen by the reporting node."""

    model_config = ConfigDict(extra="forbid")
    peer: str = Field(min_length=1, max_length=64, description="peer node name (its key if unknown)")
    rx_bytes: CounterValue
    tx_bytes: CounterValue
    rx_packets: int | None = Field(default=None, ge=0, le=MAX_COUNTER)
    tx_packets: int | None = Field(default=None, ge=0, le=MAX_COUNTER)
    handshake_age_seconds: float | None = Field(default=None, ge=0, le=10**10)


class TenantCounters(BaseModel):
    """A tenant's traffic over the mesh on this node (its VXLAN device)."""

    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(min_length=1, max_length=63)
    vni: int = Field(ge=1, le=MAX_VNI)
    rx_bytes: CounterValue
    tx_bytes: CounterValue
    rx_packets: int | None = Field(default=None, ge=0, le=MAX_COUNTER)
    tx_packets: int | None = Field(default=None, ge=0, le=MAX_COUNTER)


class MetricsReport(BaseModel):
    """PUT by an agent after each pass: cumulative counters and its last reconcile."""

    model_config = ConfigDict(extra="forbid")
    interval_seconds: float = Field(default=10.0, gt=0, le=3600, description="the agent's pass interval")
    reconcile_seconds: float = Field(default=0.0, ge=0, le=86400)
    reconcile_errors_total: int = Field(default=0, ge=0, le=MAX_COUNTER)
    peers: list[PeerCounters] = Field(default_factory=list, max_length=4096)
    tenants: list[TenantCounters] = Field(default_factory=list, max_length=4096)


# --- the in-memory board ------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterSet:
    """(rx, tx) byte counters by key, packed: the history holds many of these.

    Consecutive points of a node share one ``index`` while its peers do not change.
    """

    index: Mapping[str, int]
    values: array[int]

    @classmethod
    def build(cls, rows: Iterable[tuple[str, int, int]], previous: CounterSet | None = None) -> CounterSet:
        rows = list(rows)
        keys = [key for key, _, _ in rows]
        same = previous is not None and list(previous.index) == keys
        index = previous.index if same and previous is not None else {key: i for i, key in enumerate(keys)}
        values = array("Q", (value for _, rx, tx in rows for value in (rx, tx)))
        return cls(index, values)

    def get(self, key: str) -> tuple[int, int] | None:
        i = self.index.get(key)
        return None if i is None else (self.values[2 * i], self.values[2 * i + 1])

    def labels(self) -> list[str]:
        return list(self.index)


@dataclass(frozen=True)
class Point:
    at: float  # controller's Unix time when the report arrived
    peers: CounterSet
    tenants: CounterSet
    reconcile_seconds: float


@dataclass(frozen=True)
class NodeSeries:
    """A copy of one node's board entry, safe to read without the lock."""

    received: float
    latest: MetricsReport
    points: tuple[Point, ...]


class MetricsBoard:
    """Latest report and a bounded history per node; thread-safe."""

    def __init__(
        self,
        history_seconds: float = HISTORY_SECONDS,
        step_seconds: float = STEP_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history_seconds = history_seconds
        self.step_seconds = step_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, MetricsReport]] = {}
        self._points: dict[str, deque[Point]] = {}

    def put(self, node: str, report: MetricsReport) -> None:
        now = self.clock()
        with self._lock:
            points = self._points.setdefault(node, deque())
            previous = points[-1] if points else None
            point = to_point(now, report, previous)
            add_point(points, point, self.step_seconds, now - self.history_seconds)
            self._latest[node] = (now, report)
            self._forget_silent(now - self.history_seconds)

    def _forget_silent(self, before: float) -> None:
        """Nodes silent for the whole history (deleted, gone) leave the board."""
        for name in [n for n, (received, _) in self._latest.items() if received < before]:
            del self._latest[name], self._points[name]

    def forget(self, node: str) -> None:
        with self._lock:
            self._latest.pop(node, None)
            self._points.pop(node, None)

    def series(self) -> dict[str, NodeSeries]:
        with self._lock:
            return {
                node: NodeSeries(received, report, tuple(self._points[node]))
                for node, (received, report) in self._latest.items()
            }


def to_point(now: float, report: MetricsReport, previous: Point | None) -> Point:
    peer_rows = ((p.peer, p.rx_bytes, p.tx_bytes) for p in report.peers)
    tenant_rows = ((t.tenant, t.rx_bytes, t.tx_bytes) for t in report.tenants)
    if previous is None:
        return Point(
            now, CounterSet.build(peer_rows), CounterSet.build(tenant_rows), report.reconcile_seconds
        )
    peers = CounterSet.build(peer_rows, previous.peers)
    return Point(now, peers, CounterSet.build(tenant_rows, previous.tenants), report.reconcile_seconds)


def add_point(points: deque[Point], point: Point, step: float, oldest: float) -> None:
    """Append, or replace the newest point while it is under ``step`` past the one
    before it, so kept points are ``step`` apart however fast agents report and
    the newest report is always last; drop what is too old."""
    if len(points) >= 2 and points[-1].at - points[-2].at < step:
        points[-1] = point
    else:
        points.append(point)
    while len(points) > 2 and points[0].at < oldest:
        points.popleft()


# --- pure rate arithmetic ------------------------------------------------------------------------


def delta(older: int, newer: int) -> int:
    """Growth of a counter; a counter that went down was reset and counts from zero."""
    return newer - older if newer >= older else newer


def rates(
    older: tuple[int, int] | None, newer: tuple[int, int] | None, seconds: float
) -> tuple[float, float]:
    """(rx, tx) per second between two readings; zero when the newer is missing.

    A key the older point lacks (a peer or tenant that appeared since) counts
    from zero, like a reset: WireGuard peers and VXLAN devices start their
    counters at zero when created. Taking it as "no rate" lost real traffic:
    an agent's first report has no peers yet, and while the newest point is
    being replaced (``add_point``), the reading that first carried the peer
    is gone by the time a flood shows, leaving only that first point before it.
    """
    if newer is None or seconds <= 0:
        return 0.0, 0.0
    older = older or (0, 0)
    return delta(older[0], newer[0]) / seconds, delta(older[1], newer[1]) / seconds


def rate_pair(points: Sequence[Point], min_span: float = RATE_MIN_SPAN) -> tuple[Point, Point] | None:
    """The newest point and the newest one at least ``min_span`` older (else the oldest)."""
    if len(points) < 2:
        return None
    newest = points[-1]
    older = next((p for p in reversed(points[:-1]) if newest.at - p.at >= min_span), points[0])
    return older, newest


def key_rates(older: CounterSet, newer: CounterSet, seconds: float) -> dict[str, tuple[float, float]]:
    return {key: rates(older.get(key), newer.get(key), seconds) for key in newer.labels()}


def total_rates(older: CounterSet, newer: CounterSet, seconds: float) -> tuple[float, float]:
    per_key = key_rates(older, newer, seconds).values()
    return sum(rx for rx, _ in per_key), sum(tx for _, tx in per_key)


def is_up(received: float | None, interval: float, now: float) -> bool:
    return received is not None and now - received <= UP_PASSES * interval + UP_SLACK_SECONDS


# --- views: JSON for the dashboard and CLI, and Prometheus ------------------------------------------


class RatePoint(BaseModel):
    at: datetime
    rx_rate: float
    tx_rate: float


class PeerView(BaseModel):
    peer: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int | None
    tx_packets: int | None
    handshake_age_seconds: float | None
    rx_rate: float = Field(description="bytes per second, over the latest reports")
    tx_rate: float


class TenantView(BaseModel):
    tenant: str
    vni: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int | None
    tx_packets: int | None
    rx_rate: float
    tx_rate: float


class NodeMetrics(BaseModel):
    node: str
    status: NodeStatus
    up: bool = Field(description="reported within 2.5 agent passes + 5 s")
    reported_at: datetime | None
    report_age_seconds: float | None
    interval_seconds: float | None
    reconcile_seconds: float | None
    reconcile_errors_total: int | None
    rx_bytes: int = Field(description="sum over peers (WireGuard traffic)")
    tx_bytes: int
    rx_rate: float
    tx_rate: float
    peers: list[PeerView]
    tenants: list[TenantView]
    history: list[RatePoint] = Field(description="node total rates, oldest first")
    peer_history: dict[str, list[RatePoint]] | None = None
    tenant_history: dict[str, list[RatePoint]] | None = None


class MetricsView(BaseModel):
    at: datetime
    history_seconds: float
    step_seconds: float
    nodes: list[NodeMetrics]


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def series_rates(
    points: Sequence[Point], pick: Callable[[Point, Point, float], tuple[float, float]]
) -> list[RatePoint]:
    out = []
    for older, newer in itertools.pairwise(points):
        rx, tx = pick(older, newer, newer.at - older.at)
        out.append(RatePoint(at=utc(newer.at), rx_rate=rx, tx_rate=tx))
    return out


def key_series(points: Sequence[Point], keys: list[str], which: str) -> dict[str, list[RatePoint]]:
    def one(key: str) -> list[RatePoint]:
        def pick(a: Point, b: Point, seconds: float) -> tuple[float, float]:
            return rates(getattr(a, which).get(key), getattr(b, which).get(key), seconds)

        return series_rates(points, pick)

    return {key: one(key) for key in keys}


def node_metrics(
    node: Node, series: NodeSeries | None, now: float, *, history: bool = True, detail: bool = False
) -> NodeMetrics:
    """One node's view: latest counters, rates over the latest reports, history."""
    if series is None:
        return _silent(node)
    report, points = series.latest, series.points
    pair = rate_pair(points)
    span = pair[1].at - pair[0].at if pair else 0.0
    peer_rates = key_rates(pair[0].peers, pair[1].peers, span) if pair else {}
    tenant_rates = key_rates(pair[0].tenants, pair[1].tenants, span) if pair else {}
    age = max(0.0, now - series.received)
    peers = [_peer_view(p, age, peer_rates.get(p.peer, (0.0, 0.0))) for p in report.peers]
    keys = [p.peer for p in report.peers], [t.tenant for t in report.tenants]
    return NodeMetrics(
        node=node.name,
        status=node.status,
        up=node.status is NodeStatus.ACTIVE and is_up(series.received, report.interval_seconds, now),
        reported_at=utc(series.received),
        report_age_seconds=age,
        interval_seconds=report.interval_seconds,
        reconcile_seconds=report.reconcile_seconds,
        reconcile_errors_total=report.reconcile_errors_total,
        rx_bytes=sum(p.rx_bytes for p in report.peers),
        tx_bytes=sum(p.tx_bytes for p in report.peers),
        rx_rate=sum(p.rx_rate for p in peers),
        tx_rate=sum(p.tx_rate for p in peers),
        peers=peers,
        tenants=[_tenant_view(t, tenant_rates.get(t.tenant, (0.0, 0.0))) for t in report.tenants],
        history=series_rates(points, lambda a, b, s: total_rates(a.peers, b.peers, s)) if history else [],
        peer_history=key_series(points, keys[0], "peers") if detail else None,
        tenant_history=key_series(points, keys[1], "tenants") if detail else None,
    )


def _silent(node: Node) -> NodeMetrics:
    return NodeMetrics(
        node=node.name,
        status=node.status,
        up=False,
        reported_at=None,
        report_age_seconds=None,
        interval_seconds=None,
        reconcile_seconds=None,
        reconcile_errors_total=None,
        rx_bytes=0,
        tx_bytes=0,
        rx_rate=0.0,
        tx_rate=0.0,
        peers=[],
        tenants=[],
        history=[],
    )


def _peer_view(peer: PeerCounters, report_age: float, rate: tuple[float, float]) -> PeerView:
    handshake = None if peer.handshake_age_seconds is None else peer.handshake_age_seconds + report_age
    return PeerView(
        peer=peer.peer,
        rx_bytes=peer.rx_bytes,
        tx_bytes=peer.tx_bytes,
        rx_packets=peer.rx_packets,
        tx_packets=peer.tx_packets,
        handshake_age_seconds=handshake,
        rx_rate=rate[0],
        tx_rate=rate[1],
    )


def _tenant_view(tenant: TenantCounters, rate: tuple[float, float]) -> TenantView:
    return TenantView(
        tenant=tenant.tenant,
        vni=tenant.vni,
        rx_bytes=tenant.rx_bytes,
        tx_bytes=tenant.tx_bytes,
        rx_packets=tenant.rx_packets,
        tx_packets=tenant.tx_packets,
        rx_rate=rate[0],
        tx_rate=rate[1],
    )


def metrics_view(
    board: MetricsBoard, nodes: Iterable[Node], *, history: bool = True, detail: bool = False
) -> MetricsView:
    now, series = board.clock(), board.series()
    views = [
        node_metrics(node, series.get(node.name), now, history=history, detail=detail)
        for node in sorted(nodes, key=lambda n: n.name)
    ]
    return MetricsView(
        at=utc(now), history_seconds=board.history_seconds, step_seconds=board.step_seconds, nodes=views
    )


# --- Prometheus ------------------------------------------------------------------------------------------

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ViewCollector:
    """A custom collector over one ``MetricsView`` (no global registry, no state)."""

    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        nodes = self.view.nodes
        for kind, name, text, field in (
            (GaugeMetricFamily, "ztos_node_up", "1 if the node's agent reported recently", "up"),
            (
                GaugeMetricFamily,
                "ztos_node_report_age_seconds",
                "seconds since the last report",
                "report_age_seconds",
            ),
            (
                GaugeMetricFamily,
                "ztos_reconcile_seconds",
                "duration of the last reconcile",
                "reconcile_seconds",
            ),
            (
                CounterMetricFamily,
                "ztos_reconcile_errors",
                "failed reconciles since the agent started",
                "reconcile_errors_total",
            ),
        ):
            yield _family(kind, name, text, ["node"], [((n.node,), getattr(n, field)) for n in nodes])
        yield from self._peers(nodes)
        yield from self._tenants(nodes)

    @staticmethod
    def _peers(nodes: list[NodeMetrics]) -> Iterator[Metric]:
        rows = [(n.node, p) for n in nodes for p in n.peers]
        labels = ["node", "peer"]
        for field, kind, text in (
            ("rx_bytes", CounterMetricFamily, "bytes received from the peer over WireGuard"),
            ("tx_bytes", CounterMetricFamily, "bytes sent to the peer over WireGuard"),
            ("rx_packets", CounterMetricFamily, "packets from the peer (when the backend counts them)"),
            ("tx_packets", CounterMetricFamily, "packets to the peer (when the backend counts them)"),
            ("handshake_age_seconds", GaugeMetricFamily, "seconds since the latest WireGuard handshake"),
        ):
            samples = (((node, p.peer), getattr(p, field)) for node, p in rows)
            yield _family(kind, f"ztos_peer_{field}", text, labels, samples)

    @staticmethod
    def _tenants(nodes: list[NodeMetrics]) -> Iterator[Metric]:
        rows = [(n.node, t) for n in nodes for t in n.tenants]
        for field in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"):
            samples = (((node, t.tenant), getattr(t, field)) for node, t in rows)
            text = f"tenant traffic over the mesh on the node ({field.replace('_', ' ')}, VXLAN device)"
            yield _family(CounterMetricFamily, f"ztos_tenant_{field}", text, ["node", "tenant"], samples)


def _family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    labels: list[str],
    samples: Iterable[tuple[tuple[str, ...], float | int | None]],
) -> Metric:
    family = kind(name, documentation, labels=labels)
    for values, value in samples:
        if value is not None:
            family.add_metric(list(values), float(value))
    return family


def render_prometheus(view: MetricsView) -> bytes:
    """The Prometheus text exposition of ``view`` (counters get the ``_total`` suffix)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(view))  # type: ignore[arg-type]
    return generate_latest(registry)
