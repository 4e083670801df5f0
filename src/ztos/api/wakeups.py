"""Node watchers wake when a change concerns them, and only then.

Why not the change signal itself: it wakes every sleeper on every commit, and at
10,000 agents the last-seen ticks alone (about 170 a second) would resume
10,000 coroutines each time, only for each to find it was not concerned. So
one task per process follows the signal instead: on each new revision it moves
the process's ``NodeMaps`` forward (one feed read, whoever else is waiting)
and resolves the futures of the node watchers the new steps concern
(``ztos.controller.audience``); a commit that concerns three hosts resumes
three coroutines. A watcher registers before it checks, and the follower wakes
only after the maps moved, both on the event loop, so no step can fall between
a watcher's check and its sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from starlette.concurrency import run_in_threadpool

from ztos.controller.nodemaps import NodeMaps
from ztos.directory import ChangeSignal

log = logging.getLogger(__name__)

FOLLOW_TIMEOUT = 30.0  # seconds a follower waits on the signal before looking again anyway


class NodeWakeups:
    """The node watchers of one process, by node name, and the task that wakes them."""

    def __init__(self, maps: NodeMaps, signal: ChangeSignal) -> None:
        self.maps, self.signal = maps, signal
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._follower: asyncio.Task[None] | None = None
        self.woken = 0  # watchers resolved so far, for /metrics

    @property
    def waiting(self) -> int:
        """Node watchers asleep now (a gauge for /metrics)."""
        return sum(len(w) for w in self._waiters.values())

    async def caught_up(self) -> None:
        """Move the maps to the newest revision this process knows of (the follower's job,
        done here too for a watcher that arrives before the follower caught up)."""
        if self.maps.revision < self.signal.revision:
            await run_in_threadpool(self.maps.refresh, self.signal.revision)

    def due(self, name: str, since: int) -> bool:
        """Whether a step after ``since`` (held by the maps) concerns node ``name``."""
        return self.maps.revision > since and self.maps.concerns(name, since)

    async def wait(self, name: str, since: int, timeout: float) -> None:
        """Sleep until a step after ``since`` concerns ``name``, the timeout, or shutdown."""
        self._ensure_follower()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters[name]
        waiters.add(future)
        try:
            if self.due(name, since) or self.signal.closed:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            waiters.discard(future)
            if not waiters:
                self._waiters.pop(name, None)

    def _ensure_follower(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        seen = self.maps.revision
        while not self.signal.closed:
            await self.signal.wait_for_revision(seen, FOLLOW_TIMEOUT)
            try:
                await self.caught_up()
            except Exception:  # a directory error must not end the follower: log, go on
                log.exception("moving node maps forward failed; watchers fall back to their timeout")
                await self.signal.sleep(1.0)
                continue
            if self.maps.revision > seen:
                self._wake(seen)
                seen = self.maps.revision
        self._wake_all()

    def _wake(self, since: int) -> None:
        audience = self.maps.audience_since(since)
        names = list(self._waiters) if audience.everyone else audience.nodes & self._waiters.keys()
        for name in names:
            self._resolve(self._waiters.get(name, ()))

    def _wake_all(self) -> None:
        for waiters in list(self._waiters.values()):
            self._resolve(waiters)

    def _resolve(self, futures: set[asyncio.Future[None]] | tuple[()]) -> None:
        for future in list(futures):
            if not future.done():
                future.set_result(None)
                self.woken += 1
