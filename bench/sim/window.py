"""One measured change: what the agents fetched and received between a write and its settling.

Definitions (the figures in the report are built from these):

* A write's clock starts just before its request is sent (``started``).
* An agent **holds the new map** at the end of the first node-map fetch
  (``GET /api/v1/netmap``) that completes after ``started`` and whose body
  differs from the body of that agent's previous fetch (compared by hash, so
  a future delta or "unchanged" form is judged by what comes back: an empty
  or unchanged answer is not a change). A newly enrolled agent's first map
  counts as a change.
* The **affected** agents are those that came to hold a new map within the
  window; ``expected`` are the agents that must, by construction of the
  simulated network (e.g. a quarantined host's cell mates); an expected agent
  that never did is reported as ``missed``.
* **write -> last agent** is the latest of those fetch ends minus ``started``.
* An agent is **woken** when its watch long-poll returns with changes after
  ``started``; the bytes of that watch response and of every request of the
  pass it triggers (map, status, metrics, posture) are the change's bytes.
  Passes started by a watch timeout (the periodic drift repair) are not.
* The window **settles** once every expected agent holds the new map, no
  woken pass is in flight and for ``grace`` seconds no agent was woken and
  none fetched a changed map (periodic passes that find nothing new go on
  and do not count); or, failing that, after the settle timeout. The same
  test, with nothing expected, is what "quiet" means before each write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Window:
    kind: str
    started: float
    expected: frozenset[str]
    acked: float | None = None
    changed: dict[str, float] = field(default_factory=dict)  # agent -> fetch end
    woken: set[str] = field(default_factory=set)
    in_flight: int = 0
    woken_bytes: int = 0
    map_bytes: int = 0
    last_event: float = field(default_factory=time.perf_counter)

    def fetched(self, agent: str, end: float, changed: bool, nbytes: int, woken: bool) -> None:
        if woken or changed:  # a periodic pass that found nothing new is not the change's work
            self.last_event = end
        if woken:
            self.map_bytes += nbytes
        if changed and end >= self.started and agent not in self.changed:
            self.changed[agent] = end

    def wake(self, agent: str, nbytes: int) -> None:
        self.woken.add(agent)
        self.in_flight += 1
        self.woken_bytes += nbytes
        self.last_event = time.perf_counter()

    def pass_done(self) -> None:
        self.in_flight -= 1
        self.last_event = time.perf_counter()

    def missing(self) -> set[str]:
        return set(self.expected) - set(self.changed)

    def settled(self, now: float, grace: float) -> bool:
        quiet = self.in_flight <= 0 and now - self.last_event >= grace
        return quiet and not self.missing()

    def result(self, timed_out: bool, cpu_s: float) -> dict[str, Any]:
        last = max(self.changed.values(), default=None)
        return {
            "kind": self.kind,
            "write_ms": None if self.acked is None else round((self.acked - self.started) * 1000, 2),
            "to_last_agent_ms": None if last is None else round((last - self.started) * 1000, 2),
            "affected": len(self.changed),
            "expected": len(self.expected),
            "missed": len(self.missing()),
            "woken": len(self.woken),
            "bytes": self.woken_bytes,
            "map_bytes": self.map_bytes,
            "timed_out": timed_out,
            "controller_cpu_s": round(cpu_s, 3),
        }
