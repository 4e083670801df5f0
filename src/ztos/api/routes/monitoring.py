"""Monitoring: agents' counters in, metrics, a live stream and the audit log out.

* ``PUT /api/v1/nodes/self/metrics`` (node): an agent's counters after each pass.
* ``GET /metrics``: Prometheus text; readers by certificate or bearer token,
  or anyone when the controller runs with ``--metrics-public`` (a scraper).
* ``GET /api/v1/monitoring/metrics``: the same data as JSON with rates and the
  short history, for the dashboard and ``ztos monitoring top``.
* ``GET /api/v1/monitoring/stream``: server-sent events, one ``tick`` a second
  (nodes up/down, per-link and per-tenant rates, new audit events). Browsers'
  ``EventSource`` cannot send headers, so this route also takes the bearer
  token as ``?access_token=``. The stream ends (``event: end``) when the
  credentials behind it expire or are revoked.
* ``GET /api/v1/monitoring/logs``: the audit log with filters and paging.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ztos.api.auth import NODES, READERS, auth_state, controller_of, requires
from ztos.api.limits import MAX_STORED_INT
from ztos.api.routes.watch import watch_stats
from ztos.audit import verify_chain
from ztos.controller import Controller
from ztos.controller.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    MetricsReport,
    MetricsView,
    metrics_view,
    render_prometheus,
)
from ztos.errors import NotFound, ZtosError
from ztos.model import AuditEvent
from ztos.pki import Identity

router = APIRouter(tags=["monitoring"])
T = TypeVar("T")
Reader = Annotated[Identity, Depends(requires(READERS))]
STREAM_READER = requires(READERS, query_token=True)
METRICS_READER = requires(READERS)
TICK_SECONDS = 1.0
AUDIT_PER_TICK = 100
SCAN_BATCH = 1000
LOGS_DESCRIPTION = """Audit events after sequence ``after``, oldest first, that match every filter given.

``node`` matches events about or by the node (``node:N`` target or actor, its enrolment, tenant
attachments); ``action`` matches exactly or by dotted prefix (``node`` matches ``node.revoke``);
``actor`` matches ``role:name``, the name or the role; ``outcome`` is ``ok`` or ``refused``;
``since`` is an ISO 8601 time; ``q`` is a case-insensitive text search over every field.
``next_after`` is where the next page starts (poll with it to follow the log)."""


# --- rendered snapshots -------------------------------------------------------------------------


@dataclass
class Snapshots:
    """Rendered read-only responses, reused for ``max_age`` seconds.

    Every dashboard tab, ``monitoring top`` and a scraper poll these views,
    and each render walks every node and peer (and, for the security status,
    the whole audit chain); agents report once a pass, so one render a second
    serves them all. Authentication still runs per request: only the data is
    shared, and every reader role may see all of it.
    """

    max_age: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _items: dict[Hashable, tuple[float, object]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable, render: Callable[[], T]) -> T:
        """``render()``'s result, made at most ``max_age`` ago; one key, one type."""
        now = self.clock()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.max_age:
            return hit[1]  # type: ignore[return-value]
        value = render()  # concurrent misses may render twice; cheaper than serialising them
        with self._lock:
            self._items[key] = (now, value)
        return value


def snapshots(request: Request) -> Snapshots:
    """This app's snapshot cache, made on first use."""
    cache: Snapshots | None = getattr(request.app.state, "snapshots", None)
    if cache is None:
        cache = request.app.state.snapshots = Snapshots()
    return cache


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


# --- agents report ----------------------------------------------------------------------------


@router.put("/api/v1/nodes/self/metrics", status_code=204, tags=["mesh"])
def report_metrics(
    body: MetricsReport, request: Request, who: Annotated[Identity, Depends(requires(NODES))]
) -> None:
    """An agent's traffic counters and reconcile figures after each pass."""
    controller_of(request).status_board.metrics.put(who.name, body)


# --- metrics out ------------------------------------------------------------------------------


def current_view(controller: Controller, *, history: bool = True, detail: bool = False) -> MetricsView:
    board = controller.status_board.metrics
    return metrics_view(board, controller.list_nodes(), history=history, detail=detail)


async def metrics_access(request: Request) -> None:
    if not auth_state(request).settings.metrics_public:
        await METRICS_READER(request)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {PROMETHEUS_CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
    openapi_extra={
        "x-ztos-roles": sorted(role.value for role in READERS),
        "x-ztos-auth": "client certificate or bearer token; none when started with --metrics-public",
    },
    dependencies=[Depends(metrics_access)],
)
def prometheus(request: Request) -> Response:
    """Prometheus text exposition: per peer and tenant bytes, handshake ages, node up, reconciles."""
    controller = controller_of(request)
    body = snapshots(request).get(
        "prometheus", lambda: render_prometheus(current_view(controller, history=False))
    )
    wakeups = getattr(request.app.state, "node_wakeups", None)
    return Response(body + watch_stats(request.app).prometheus(wakeups), media_type=PROMETHEUS_CONTENT_TYPE)


@router.get("/api/v1/monitoring/metrics", response_model=MetricsView)
def metrics_json(
    request: Request,
    _: Reader,
    node: Annotated[str | None, Query(max_length=63, description="only this node")] = None,
    history: Annotated[bool, Query(description="include each node's total-rate history")] = True,
    detail: Annotated[bool, Query(description="include per-peer and per-tenant rate history")] = False,
) -> Response:
    """Latest counters, rates and the short history of every node (or one)."""
    controller = controller_of(request)

    def render() -> bytes:
        view = current_view(controller, history=history, detail=detail)
        if node is not None:
            view.nodes = [n for n in view.nodes if n.node == node]
            if not view.nodes:
                raise NotFound(f"no node named {node!r}")
        return view.model_dump_json().encode()

    return json_response(snapshots(request).get(("metrics", node, history, detail), render))


# --- the live stream --------------------------------------------------------------------------


class StreamLink(BaseModel):
    node: str
    peer: str
    rx_rate: float
    tx_rate: float
    handshake_age_seconds: float | None


class StreamNode(BaseModel):
    node: str
    status: str
    up: bool
    rx_rate: float
    tx_rate: float
    report_age_seconds: float | None


class StreamTenant(BaseModel):
    node: str
    tenant: str
    rx_rate: float
    tx_rate: float


class StreamTick(BaseModel):
    """The ``data`` of each ``tick`` event of ``/api/v1/monitoring/stream``."""

    at: datetime
    nodes: list[StreamNode]
    links: list[StreamLink]
    tenants: list[StreamTenant]
    audit: list[AuditEvent]


def tick(view: MetricsView, audit: list[AuditEvent]) -> StreamTick:
    nodes = view.nodes
    return StreamTick(
        at=view.at,
        nodes=[
            StreamNode(
                node=n.node,
                status=n.status.value,
                up=n.up,
                rx_rate=n.rx_rate,
                tx_rate=n.tx_rate,
                report_age_seconds=n.report_age_seconds,
            )
            for n in nodes
        ],
        links=[
            StreamLink(
                node=n.node,
                peer=p.peer,
                rx_rate=p.rx_rate,
                tx_rate=p.tx_rate,
                handshake_age_seconds=p.handshake_age_seconds,
            )
            for n in nodes
            for p in n.peers
        ],
        tenants=[
            StreamTenant(node=n.node, tenant=t.tenant, rx_rate=t.rx_rate, tx_rate=t.tx_rate)
            for n in nodes
            for t in n.tenants
        ],
        audit=audit,
    )


def last_audit_seq(controller: Controller) -> int:
    seq = 0
    while events := controller.audit_log(seq, SCAN_BATCH * 10):
        seq = events[-1].seq
    return seq


def next_tick(controller: Controller, cache: Snapshots, cursor: int) -> tuple[StreamTick, int]:
    events = controller.audit_log(cursor, AUDIT_PER_TICK)
    view = cache.get("stream", lambda: current_view(controller, history=False))
    return tick(view, events), events[-1].seq if events else cursor


def sse(event: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


async def stream_events(request: Request, cursor: int, duration: float | None) -> AsyncIterator[str]:
    controller, cache = controller_of(request), snapshots(request)
    loop = asyncio.get_running_loop()
    ends = None if duration is None else loop.time() + duration
    stopping = controller.change_signal()  # closed when the controller shuts down
    yield f"retry: {int(TICK_SECONDS * 2000)}\n\n"
    while ends is None or loop.time() < ends:
        try:
            await run_in_threadpool(STREAM_READER.check, request)  # revoked or expired: stop
        except ZtosError as exc:
            yield sse("end", json.dumps(exc.as_body()))
            return
        payload, cursor = await run_in_threadpool(next_tick, controller, cache, cursor)
        yield sse("tick", payload.model_dump_json(), cursor)
        await stopping.sleep(TICK_SECONDS)
        if await request.is_disconnected():
            return
        if stopping.closed:
            yield sse("end", json.dumps({"error": "stopping", "detail": "the controller is stopping"}))
            return
    yield sse("end", json.dumps({"error": "duration", "detail": "the requested duration is over"}))


@router.get(
    "/api/v1/monitoring/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    _: Annotated[Identity, Depends(STREAM_READER)],
    after: Annotated[
        int | None, Query(ge=0, le=MAX_STORED_INT, description="send audit events after this seq")
    ] = None,
    duration: Annotated[float | None, Query(gt=0, le=86400, description="end after this many s")] = None,
    access_token: Annotated[
        str | None, Query(max_length=2048, description="bearer token, for EventSource (no headers)")
    ] = None,
) -> StreamingResponse:
    """Server-sent events: ``tick`` every second (``StreamTick`` JSON), ``end`` when it stops.

    Reconnecting with ``Last-Event-ID`` resumes the audit feed where it stopped.
    """
    del access_token  # read by the auth dependency
    last_id = request.headers.get("last-event-id", "")
    # "²".isdigit() is true but int() refuses it; a number past the store's is no seq we sent
    if after is None and last_id.isascii() and last_id.isdigit() and int(last_id) <= MAX_STORED_INT:
        after = int(last_id)  # otherwise: start from now
    cursor = after if after is not None else await run_in_threadpool(last_audit_seq, controller_of(request))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        stream_events(request, cursor, duration), media_type="text/event-stream", headers=headers
    )


# --- the audit log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """Filters of ``GET /api/v1/monitoring/logs``; every one given must match."""

    node: str | None = None
    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    text: str | None = None

    def matches(self, event: AuditEvent) -> bool:
        checks: list[Callable[[AuditEvent], bool]] = []
        if self.node:
            checks.append(self._about_node)
        if self.action:
            checks.append(lambda e: e.action == self.action or e.action.startswith(f"{self.action}."))
        if self.actor:
            checks.append(lambda e: self.actor in (e.actor, *e.actor.split(":", 1)))
        if self.outcome:
            checks.append(lambda e: e.outcome == self.outcome)
        if self.since is not None:
            checks.append(lambda e: e.at >= self.since)  # type: ignore[operator]
        if self.text:
            checks.append(self._has_text)
        return all(check(event) for check in checks)

    def _about_node(self, event: AuditEvent) -> bool:
        assert self.node is not None
        mention = re.compile(rf"\bnode[: ]{re.escape(self.node)}(?![\w.-])")
        fields = (event.actor, event.target, event.detail)
        return event.actor.startswith(f"enrollee:{self.node}@") or any(mention.search(f) for f in fields)

    def _has_text(self, event: AuditEvent) -> bool:
        assert self.text is not None
        needle = self.text.lower()
        fields = (event.actor, event.action, event.target, event.outcome, event.detail)
        return any(needle in field.lower() for field in fields)


def filtered_page(
    fetch: Callable[[int, int], list[AuditEvent]], query: AuditQuery, after: int, limit: int
) -> tuple[list[AuditEvent], int]:
    """Up to ``limit`` matching events after ``after``, and the seq to continue from
    (the last event looked at, matching or not, so a follower never rescans)."""
    found: list[AuditEvent] = []
    cursor = after
    while True:
        events = fetch(cursor, SCAN_BATCH)
        for event in events:
            cursor = event.seq
            if query.matches(event):
                found.append(event)
                if len(found) == limit:
                    return found, cursor
        if len(events) < SCAN_BATCH:
            return found, cursor


class AuditPage(BaseModel):
    events: list[AuditEvent]
    next_after: int
    chain_ok: bool | None = None
    first_bad_seq: int | None = None


@router.get("/api/v1/monitoring/logs", response_model=AuditPage, description=LOGS_DESCRIPTION)
def audit_logs(
    request: Request,
    _: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    verify: Annotated[bool, Query(description="check the whole hash chain")] = False,
    node: Annotated[str | None, Query(max_length=63)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, e.g. 2025-01-31T12:00:00Z")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text search")] = None,
) -> AuditPage:
    controller = controller_of(request)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=controller.clock().tzinfo)
    query = AuditQuery(node, action, actor, outcome, since, q)
    events, next_after = filtered_page(controller.audit_log, query, after, limit)
    page = AuditPage(events=events, next_after=next_after)
    if verify:
        bad = verify_chain(controller.audit_log(0, 10**9))
        page.chain_ok, page.first_bad_seq = bad is None, bad
    return page
