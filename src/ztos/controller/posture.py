"""Continuous verification: a host whose posture reports stop is no longer compliant.

The time of a host's last report is in the store's shared state
(``POSTURE_SCOPE``), so every controller replica judges by the same clock: a
host reporting to A is not marked stale by B. Every report rewrites it: the
report's transaction is open anyway (it merges the host's attributes), the
entry has no revision and wakes nobody, and a throttled time would have to be
allowed for, marking a silent host up to half a timeout late (a lab test saw
the flow cut 9.4 s after a 6 s timeout). A host is marked once it has been
silent for more than the timeout (+ one check).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ztos.errors import ZtosError

if TYPE_CHECKING:
    from ztos.controller import Controller

log = logging.getLogger("ztos.controller.posture")
CHECK_EVERY = 0.5
DEFAULT_TIMEOUT = 30.0
POSTURE_SCOPE = "posture.report"


def report_time(entry: dict[str, Any] | None) -> float | None:
    """The report time in a stored entry (seconds since the epoch)."""
    return None if entry is None else float(entry["at"])


def is_stale(stored: float, now: float, timeout: float) -> bool:
    """Silent for more than ``timeout`` since the last report."""
    return now - stored > timeout


class PostureWatchdog(threading.Thread):
    """Checks twice a second; a stale host is marked once (by one replica), and its next
    report restores it."""

    def __init__(self, controller: Controller) -> None:
        super().__init__(name="posture-watchdog", daemon=True)
        self.controller = controller
        self.stop = threading.Event()

    def run(self) -> None:
        timeout = self.controller.posture_timeout
        while not self.stop.wait(CHECK_EVERY):
            try:
                for name in self.controller.expire_posture():
                    log.warning("no posture report from %s for %.0fs: marked non-compliant", name, timeout)
            except ZtosError as exc:
                log.warning("posture watchdog: %s", exc.detail)
