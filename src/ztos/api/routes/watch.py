"""The change feed, long-polled by agents and dashboards.

A watcher sends the last revision it saw; the call returns as soon as there
is anything newer *that the caller may see*, or empty after ``timeout``
seconds (changes it may not see only advance the returned revision, so a DNS
zone update or a token never wakes every agent). Nodes see only the
kinds they need for their node map; token secrets' hashes are never sent.
Records the policy is evaluated over (the active-policy head, users, groups)
wake nodes too, without their data: a woken agent re-fetches its node map,
which carries its rules, so ``policy apply`` reaches the hosts at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ztos.api.auth import ANYONE, controller_of, requires
from ztos.api.limits import MAX_STORED_INT
from ztos.directory import Change
from ztos.model import Role
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["watch"])

POLL_INTERVAL = 0.05
NODE_VISIBLE_KINDS = frozenset({"network", "node", "tenant", "workload"})
NODE_WAKE_KINDS = frozenset({"policyhead", "user", "group", "device"})
REDACTED_KINDS = frozenset({"token", "tsigkey"})


class ChangeOut(BaseModel):
    rev: int
    kind: str
    key: str
    op: str
    data: dict[str, Any] | None


class WatchResult(BaseModel):
    revision: int
    changes: list[ChangeOut]


def visible(change: Change, role: Role) -> ChangeOut | None:
    if role is Role.NODE and change.kind in NODE_WAKE_KINDS:
        return ChangeOut(rev=change.rev, kind=change.kind, key=change.key, op=change.op, data=None)
    if role is Role.NODE and change.kind not in NODE_VISIBLE_KINDS:
        return None
    data = None if change.kind in REDACTED_KINDS else change.data
    return ChangeOut(rev=change.rev, kind=change.kind, key=change.key, op=change.op, data=data)


@router.get("/watch", response_model=WatchResult)
async def watch(
    request: Request,
    who: Annotated[Identity, Depends(requires(ANYONE))],
    since: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    timeout: Annotated[float, Query(ge=0, le=60)] = 25.0,
) -> WatchResult:
    controller = controller_of(request)
    deadline = time.monotonic() + timeout
    while True:
        changes = await run_in_threadpool(controller.changes, since)
        shown = [out for change in changes if (out := visible(change, who.role)) is not None]
        if changes:
            since = changes[-1].rev  # invisible changes are skipped, not waited on again
        if shown or time.monotonic() >= deadline:
            return WatchResult(revision=since, changes=shown)
        if not changes:
            await asyncio.sleep(POLL_INTERVAL)
