"""The change feed, long-polled by agents and dashboards.

A watcher sends the last revision it saw; the call returns as soon as there
is anything newer *that the caller may see*, or empty after ``timeout``
seconds (changes it may not see only advance the returned revision, so a DNS
zone update or a token never wakes anyone).

A node is woken only by a change *that concerns it*: one that can change its
node map (``ztos.controller.audience``; this process's ``NodeMaps`` records,
for each step of the directory, which hosts it concerns). It gets no record,
only one ``map`` change naming itself: a woken agent re-fetches its own node
map, which holds only what that host needs to know (its peers, its tenants,
its rules), so one host cannot read another's endpoint, key or attributes from
the feed, and a posture flap on one host does not send every agent to fetch
its map. People's watchers (dashboards) read the feed itself; token secrets'
hashes are never sent to anyone.

Between reads a person's watcher sleeps on the directory's ``ChangeSignal``
(``ztos.directory.signal``) and a node's on ``ztos.api.wakeups``, which wakes
it only for a step that concerns it: a commit wakes the watchers concerned at
once, whichever controller process made it, and an idle watcher costs no reads
at all.
"Last seen" ticks (``nodeseen``) wake nobody: every agent writes one a minute,
which would keep every dashboard's long-poll returning; readers fetch them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from ztos.api.auth import ANYONE, controller_of, requires
from ztos.api.limits import MAX_STORED_INT
from ztos.api.wakeups import NodeWakeups
from ztos.controller import Controller
from ztos.directory import Change
from ztos.model import Role
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["watch"])

MAX_BODY_MESSAGES = 64
REDACTED_KINDS = frozenset({"token", "tsigkey"})
QUIET_KINDS = frozenset({"nodeseen"})  # advance the revision, shown to no watcher


class ChangeOut(BaseModel):
    rev: int
    kind: str
    key: str
    op: str
    data: dict[str, Any] | None


class WatchResult(BaseModel):
    revision: int
    changes: list[ChangeOut]


def visible(change: Change) -> ChangeOut | None:
    """A change as people's watchers see it (nodes see only their ``map`` changes)."""
    if change.kind in QUIET_KINDS:
        return None
    data = None if change.kind in REDACTED_KINDS else change.data
    return ChangeOut(rev=change.rev, kind=change.kind, key=change.key, op=change.op, data=data)


@dataclass
class WatchStats:
    """This process's long-polls, for ``/metrics``: how many are open and how many
    change-feed reads they made (an idle or disconnected watcher adds none)."""

    open: int = 0
    reads: int = 0

    def prometheus(self, wakeups: NodeWakeups | None = None) -> bytes:
        woken = 0 if wakeups is None else wakeups.woken
        return (
            "# HELP ztos_controller_watches Long-polls of /api/v1/watch open in this controller process.\n"
            "# TYPE ztos_controller_watches gauge\n"
            f"ztos_controller_watches {self.open}\n"
            "# HELP ztos_controller_watch_reads_total Change-feed reads made by those long-polls.\n"
            "# TYPE ztos_controller_watch_reads_total counter\n"
            f"ztos_controller_watch_reads_total {self.reads}\n"
            "# HELP ztos_controller_node_wakeups_total Node long-polls woken by a change to their map.\n"
            "# TYPE ztos_controller_node_wakeups_total counter\n"
            f"ztos_controller_node_wakeups_total {woken}\n"
        ).encode()


def watch_stats(app: Any) -> WatchStats:
    """This app's watch statistics, made on first use (the app's state is per process)."""
    stats: WatchStats | None = getattr(app.state, "watch_stats", None)
    if stats is None:
        stats = app.state.watch_stats = WatchStats()
    return stats


async def until_disconnected(receive: Receive) -> None:
    """Return when the client hangs up (ASGI ``http.disconnect``).

    A GET's body has been delivered by then, so each further ``receive`` blocks
    until the connection ends; a client that streams a body keeps us listening
    for at most ``MAX_BODY_MESSAGES`` messages, then its long-poll just times out.
    """
    for _ in range(MAX_BODY_MESSAGES):
        if (await receive())["type"] == "http.disconnect":
            return
    await asyncio.get_running_loop().create_future()  # never resolved; cancelled with the watch


async def first_of(waiting: Awaitable[Any], hangup: asyncio.Future[None]) -> None:
    """Wait for ``waiting`` or the client leaving, whichever comes first."""
    woken: asyncio.Future[Any] = asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({woken, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()


def node_wakeups(app: Any, controller: Controller) -> NodeWakeups:
    """This process's node wake-ups, made on first use (the app's state is per process)."""
    wakeups: NodeWakeups | None = getattr(app.state, "node_wakeups", None)
    if wakeups is None:
        wakeups = app.state.node_wakeups = NodeWakeups(controller.node_maps, controller.change_signal())
    return wakeups


@router.get("/watch", response_model=WatchResult)
async def watch(
    request: Request,
    who: Annotated[Identity, Depends(requires(ANYONE))],
    since: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    timeout: Annotated[float, Query(ge=0, le=60)] = 25.0,
) -> WatchResult:
    """Wait for something the caller may see: a node, for a change of its own map; people,
    for the feed's changes. Returns early, with what it has, when the controller shuts
    down; a caller that hung up gets no further reads.
    """
    controller, stats = controller_of(request), watch_stats(request.app)
    deadline = asyncio.get_running_loop().time() + timeout
    hangup = asyncio.ensure_future(until_disconnected(request.receive))
    stats.open += 1
    try:
        if who.role is Role.NODE:
            wakeups = node_wakeups(request.app, controller)
            return await watch_node(wakeups, who.name, since, deadline, hangup, stats)
        return await watch_feed(controller, since, deadline, hangup, stats)
    finally:
        stats.open -= 1
        hangup.cancel()


async def watch_node(
    wakeups: NodeWakeups,
    name: str,
    since: int,
    deadline: float,
    hangup: asyncio.Future[None],
    stats: WatchStats,
) -> WatchResult:
    """One ``map`` change naming the node once a step after ``since`` concerns it."""
    loop = asyncio.get_running_loop()
    while True:
        stats.reads += 1
        await wakeups.caught_up()
        revision = max(since, wakeups.maps.revision)
        if wakeups.due(name, since):
            return WatchResult(
                revision=revision,
                changes=[ChangeOut(rev=revision, kind="map", key=name, op="put", data=None)],
            )
        since = revision
        if loop.time() >= deadline or wakeups.signal.closed or hangup.done():
            return WatchResult(revision=since, changes=[])
        await first_of(wakeups.wait(name, since, deadline - loop.time()), hangup)


async def watch_feed(
    controller: Controller, since: int, deadline: float, hangup: asyncio.Future[None], stats: WatchStats
) -> WatchResult:
    """People: the feed's changes after ``since``, each as they may see it; invisible ones
    only advance the revision (they are skipped, not waited on again)."""
    loop, signal = asyncio.get_running_loop(), controller.change_signal()
    while True:
        stats.reads += 1
        changes = await run_in_threadpool(controller.changes, since)
        shown = [out for change in changes if (out := visible(change)) is not None]
        if changes:
            since = changes[-1].rev
        if shown or loop.time() >= deadline or signal.closed or hangup.done():
            return WatchResult(revision=since, changes=shown)
        if not changes:
            await first_of(signal.wait_for_revision(since, deadline - loop.time()), hangup)
