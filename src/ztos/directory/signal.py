"""The change signal: wakes the watchers of one process when the directory moves.

Why: a long-poll that queried the store every 50 ms cost one query per
watcher per tick (200,000 a second for 10,000 idle agents). Instead each
process keeps one ``ChangeSignal`` per store and watchers sleep on it; the
back end feeds it the newest revision it knows of:

* a commit in this process calls ``notify`` right after ``COMMIT``, so the
  watchers of the same process wake at once;
* commits of other processes reach it through one cheap background check per
  process (SQLite: ``PRAGMA data_version`` in ``ztos.directory.sqlite``; an
  LDAP back end would call ``notify`` from its syncrepl persistent search).

A woken watcher reads the change feed itself, so the signal carries only a
number and a missed or early wake-up costs one read, never a lost change.
``notify`` and ``close`` are thread-safe (writes run in threadpool threads);
waiters may sit on any number of event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from dataclasses import dataclass, field


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(eq=False)
class _Waiter:
    """One sleeping watcher: wake it once the revision passes ``after``."""

    after: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(repr=False)

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody left to wake
            self.loop.call_soon_threadsafe(_resolve, self.future)


class ChangeSignal:
    """The newest revision this process knows of, and the watchers waiting past one."""

    def __init__(self, revision: int = 0) -> None:
        self._lock = threading.Lock()
        self._revision = revision
        self._closed = False
        self._waiters: set[_Waiter] = set()

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def closed(self) -> bool:
        """True once ``close`` ran: the process is stopping, watchers should return."""
        return self._closed

    @property
    def waiting(self) -> int:
        """How many watchers are asleep on the signal now (a gauge for /metrics)."""
        with self._lock:
            return len(self._waiters)

    def notify(self, revision: int) -> None:
        """The directory reached ``revision``: wake the watchers waiting for it.

        Revisions only move forward; an older or repeated one wakes nobody.
        """
        with self._lock:
            if revision <= self._revision:
                return
            self._revision = revision
            woken = [waiter for waiter in self._waiters if waiter.after < revision]
        for waiter in woken:
            waiter.wake()

    def close(self) -> None:
        """Wake every watcher now and let later waits return at once (shutdown)."""
        with self._lock:
            self._closed = True
            woken = list(self._waiters)
        for waiter in woken:
            waiter.wake()

    async def wait_for_revision(self, after: int, timeout: float) -> int:
        """Sleep until the known revision passes ``after``, ``timeout`` runs out or the
        signal closes; returns the known revision (``<= after`` when nothing happened)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(after, loop, loop.create_future())
        with self._lock:
            if self._closed or self._revision > after:
                return self._revision
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.future, timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self._revision

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, cut short when the signal closes (a stream's pause on shutdown)."""
        await self.wait_for_revision(sys.maxsize, seconds)  # no revision passes sys.maxsize
