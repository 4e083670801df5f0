"""Continuous verification: a host whose posture reports stop is no longer compliant.

The time of a host's last report is in the store's shared state
(``POSTURE_SCOPE``), so every controller replica judges by the same clock: a
host reporting to A is not marked stale by B. Writing it on every report
would cost one directory write per host per reconcile interval, so a report
refreshes the stored time only once it is older than ``REFRESH_FRACTION`` of
the timeout. The stored time then lags the last report by less than
``timeout * REFRESH_FRACTION``, and a host counts as stale only when the
stored time is older than ``timeout * (1 + REFRESH_FRACTION)``: a host is
marked after between ``timeout`` and ``1.5 * timeout`` (+ one check) of
silence, never earlier. With the default 30 s timeout and 10 s agent passes
that is one write every other pass, and none for the extra passes a watch
wake-up triggers.
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
REFRESH_FRACTION = 0.5


def report_time(entry: dict[str, Any] | None) -> float | None:
    """The report time in a stored entry (seconds since the epoch)."""
    return None if entry is None else float(entry["at"])


def needs_refresh(stored: float | None, now: float, timeout: float) -> bool:
    """Whether a report at ``now`` must rewrite the stored time."""
    return stored is None or now - stored >= timeout * REFRESH_FRACTION


def is_stale(stored: float, now: float, timeout: float) -> bool:
    """Silent for more than ``timeout``, allowing for the stored time's lag."""
    return now - stored > timeout * (1 + REFRESH_FRACTION)


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
