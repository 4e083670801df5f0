"""Data-plane areas: each reconciled on its own, each with its own outcome.

An agent pass reconciles, in order, WireGuard, the underlay-isolation table,
the tenants, their gateway tables, the policy tables and FRR. Before, the
first area that failed (FRR refusing a configuration, nftables without a
feature) ended the pass and left every area after it unreconciled, so a
broken BGP setting kept a revoked peer's rules in place. Now every area runs
every pass, whatever the others did; a failed one is tried again with its own
backoff (1 s doubling to 60 s, so a permanent error is not retried in a tight
loop while the rest keep converging), and ``ztos agent plan`` shows every
area's pending operations, or "converged".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from ztos.errors import ZtosError

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0

State = Literal["converged", "changed", "failed", "waiting"]


@dataclass(frozen=True)
class Area:
    """One area of the data plane: what ``apply`` changes, what ``plan`` would change."""

    name: str
    apply: Callable[[], list[str]]
    plan: Callable[[], list[str]]


@dataclass(frozen=True)
class Outcome:
    """What one area's reconcile (or plan) came to this pass."""

    area: str
    state: State
    operations: tuple[str, ...] = ()
    detail: str = ""
    retry_in: float = 0.0

    def lines(self) -> list[str]:
        """Human lines: the area's operations, or one line saying where it stands."""
        if self.state == "failed":
            retry = f" (retry in {self.retry_in:.0f} s)" if self.retry_in else ""
            return [f"{self.area}: failed: {self.detail}{retry}"]
        if self.state == "waiting":
            return [f"{self.area}: failed earlier: {self.detail} (retry in {self.retry_in:.0f} s)"]
        if not self.operations:
            return [f"{self.area}: converged"]
        return [f"{self.area}: {op}" for op in self.operations]


@dataclass
class Backoff:
    """Per area: when it may be tried again after failing, and why it failed."""

    clock: Callable[[], float] = time.monotonic
    _next: dict[str, float] = field(default_factory=dict)
    _delay: dict[str, float] = field(default_factory=dict)
    _why: dict[str, str] = field(default_factory=dict)

    def waiting(self, area: str) -> Outcome | None:
        """The outcome to report instead of trying ``area`` now, or None: try it."""
        left = self._next.get(area, 0.0) - self.clock()
        return Outcome(area, "waiting", detail=self._why[area], retry_in=left) if left > 0 else None

    def failed(self, area: str, why: str) -> float:
        delay = min(self._delay.get(area, BACKOFF_FIRST / 2) * 2, BACKOFF_MAX)
        self._delay[area], self._why[area] = delay, why
        self._next[area] = self.clock() + delay
        return delay

    def succeeded(self, area: str) -> None:
        for table in (self._next, self._delay, self._why):
            table.pop(area, None)


def reconcile(areas: Iterable[Area], backoff: Backoff) -> list[Outcome]:
    """Apply every area that is not backing off; one failing never stops the next."""
    outcomes = []
    for area in areas:
        waiting = backoff.waiting(area.name)
        if waiting is not None:
            outcomes.append(waiting)
            continue
        try:
            operations = tuple(area.apply())
        except (ZtosError, OSError) as exc:
            why = failure(exc)
            delay = backoff.failed(area.name, why)
            log.warning("%s: %s; other areas go on; retry in %.0f s", area.name, why, delay)
            outcomes.append(Outcome(area.name, "failed", detail=why, retry_in=delay))
            continue
        backoff.succeeded(area.name)
        outcomes.append(Outcome(area.name, "changed" if operations else "converged", operations))
    return outcomes


def plan(areas: Iterable[Area]) -> list[Outcome]:
    """Every area's pending operations, read without changing anything."""
    outcomes = []
    for area in areas:
        try:
            operations = tuple(area.plan())
        except (ZtosError, OSError) as exc:
            outcomes.append(Outcome(area.name, "failed", detail=failure(exc)))
            continue
        outcomes.append(Outcome(area.name, "changed" if operations else "converged", operations))
    return outcomes


def failure(exc: ZtosError | OSError) -> str:
    """One line for a failed area: the tool's message, or the system call's (an adapter
    that let an ``OSError`` through still must not stop the other areas)."""
    if isinstance(exc, ZtosError):
        return f"{exc.detail} [{exc.code}]"
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
