"""Rate limiting of refusal audit records, so a looping client cannot flood the log.

Every refusal (revoked certificate, unknown token, wrong role, …) is audited,
but at most one record per (identity, reason) per ``window`` seconds; the
refusals suppressed in between are counted and reported in the next record
of the same pair ("… (and 49 more since …)"), so the log still says how often
a client tried. ``repeated`` lists the pairs refused more than once recently,
which ``ztos security status`` shows as an alert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_WINDOW = 60.0
MAX_TRACKED = 10_000  # identities remembered at once; the oldest are forgotten first


@dataclass
class _Seen:
    last_written: float  # when the last record of this pair was written
    suppressed: int = 0  # refusals since then that wrote no record
    total: int = 1  # refusals seen since tracking began
    last_seen: float = 0.0  # when this pair was last refused


@dataclass(frozen=True)
class RepeatedRefusal:
    identity: str
    reason: str
    count: int


@dataclass
class RefusalLimiter:
    """Decides which refusals are written; thread-safe, clock injected for tests."""

    window: float = DEFAULT_WINDOW
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, identity: str, reason: str) -> int | None:
        """None: suppress this refusal; else write it, noting this many suppressed before it."""
        now = self.clock()
        key = (identity, reason)
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._forget_oldest()
                self._seen[key] = _Seen(last_written=now, last_seen=now)
                return 0
            seen.total += 1
            seen.last_seen = now
            if now - seen.last_written < self.window:
                seen.suppressed += 1
                return None
            suppressed, seen.suppressed, seen.last_written = seen.suppressed, 0, now
            return suppressed

    def repeated(self, within: float | None = None) -> list[RepeatedRefusal]:
        """Pairs refused more than once, the last time within ``within`` s (default 10 windows)."""
        horizon = self.clock() - (within if within is not None else 10 * self.window)
        with self._lock:
            found = [
                RepeatedRefusal(identity, reason, seen.total)
                for (identity, reason), seen in self._seen.items()
                if seen.total > 1 and seen.last_seen >= horizon
            ]
        return sorted(found, key=lambda r: (-r.count, r.identity, r.reason))

    def _forget_oldest(self) -> None:
        if len(self._seen) >= MAX_TRACKED:
            oldest = min(self._seen, key=lambda key: self._seen[key].last_seen)
            del self._seen[oldest]
