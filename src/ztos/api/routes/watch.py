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

Between reads a watcher sleeps on the directory's ``ChangeSignal``
(``ztos.directory.signal``): a commit wakes it at once, whichever controller
process made it, and an idle watcher costs no reads at all.
"Last seen" ticks (``nodeseen``) wake nobody: every agent writes one a minute,
which would keep every dashboard's long-poll returning; readers fetch them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from ztos.api.auth import ANYONE, controller_of, requires
from ztos.api.limits import MAX_STORED_INT
from ztos.controller import Controller
from ztos.directory import Change, ChangeSignal
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

    def prometheus(self) -> bytes:
        return (
            "# HELP ztos_controller_watches Long-polls of /api/v1/watch open in this controller process.\n"
            "# TYPE ztos_controller_watches gauge\n"
            f"ztos_controller_watches {self.open}\n"
            "# HELP ztos_controller_watch_reads_total Change-feed reads made by those long-polls.\n"
            "# TYPE ztos_controller_watch_reads_total counter\n"
            f"ztos_controller_watch_reads_total {self.reads}\n"
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


async def sleep_until_change(
    signal: ChangeSignal, since: int, timeout: float, hangup: asyncio.Future[None]
) -> None:
    """Wait for a revision past ``since``, the timeout, shutdown or the client leaving."""
    woken: asyncio.Future[Any] = asyncio.ensure_future(signal.wait_for_revision(since, timeout))
    try:
        await asyncio.wait({woken, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()


@router.get("/watch", response_model=WatchResult)
async def watch(
    request: Request,
    who: Annotated[Identity, Depends(requires(ANYONE))],
    since: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    timeout: Annotated[float, Query(ge=0, le=60)] = 25.0,
) -> WatchResult:
    """Wait for something the caller may see; while there is nothing, sleep on the change signal.

    Returns early, with what it has, when the controller shuts down; a caller
    that hung up gets no further reads.
    """
    controller, stats = controller_of(request), watch_stats(request.app)
    look = _node_look if who.role is Role.NODE else _feed_look
    signal = controller.change_signal()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    hangup = asyncio.ensure_future(until_disconnected(request.receive))
    stats.open += 1
    try:
        while True:
            stats.reads += 1
            since, shown = await look(controller, who.name, since, signal.revision)
            if shown or loop.time() >= deadline or signal.closed or hangup.done():
                return WatchResult(revision=since, changes=shown)
            await sleep_until_change(signal, since, deadline - loop.time(), hangup)
            if hangup.done():
                return WatchResult(revision=since, changes=[])
    finally:
        stats.open -= 1
        hangup.cancel()


async def _feed_look(
    controller: Controller, name: str, since: int, known: int
) -> tuple[int, list[ChangeOut]]:
    """People: the feed's changes after ``since``, each as they may see it; invisible ones
    only advance the revision (they are skipped, not waited on again)."""
    changes = await run_in_threadpool(controller.changes, since)
    if not changes:
        return since, []
    return changes[-1].rev, [out for change in changes if (out := visible(change)) is not None]


async def _node_look(
    controller: Controller, name: str, since: int, known: int
) -> tuple[int, list[ChangeOut]]:
    """A node: one ``map`` change when a step after ``since`` concerns it. The process's
    node maps move forward once per revision, whoever asks first; the others read nothing."""
    maps = controller.node_maps
    if maps.revision < known:
        await run_in_threadpool(maps.refresh, known)
    revision = max(since, maps.revision)
    if revision > since and maps.concerns(name, since):
        return revision, [ChangeOut(rev=revision, kind="map", key=name, op="put", data=None)]
    return revision, []
