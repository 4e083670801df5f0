"""Continuous verification: a host whose posture reports stop is no longer compliant."""

from __future__ import annotations

import logging
import threading

from ztos.controller import Controller
from ztos.errors import ZtosError

log = logging.getLogger("ztos.controller.posture")
CHECK_EVERY = 0.5


class PostureWatchdog(threading.Thread):
    """Checks twice a second; a stale host is marked once, and its next report restores it."""

    def __init__(self, controller: Controller, timeout: float) -> None:
        super().__init__(name="posture-watchdog", daemon=True)
        self.controller, self.timeout = controller, timeout
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(CHECK_EVERY):
            try:
                for name in self.controller.expire_posture(self.timeout):
                    log.warning(
                        "no posture report from %s for %.0fs: marked non-compliant", name, self.timeout
                    )
            except ZtosError as exc:
                log.warning("posture watchdog: %s", exc.detail)
