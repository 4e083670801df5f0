"""Suite-wide rules.

Integration tests need root, network namespaces and the real components the
Makefile installs. Locally they skip with a reason when those are missing; in
CI (``ZTOS_FORBID_SKIPS=1``, set by ``make test``) a skip fails the run, because
there every component is installed and a skip would hide a broken test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import RunningController, start_controller

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ZTOS_FORBID_SKIPS") == "1" and _skipped:
        print(f"\nZTOS_FORBID_SKIPS=1 and {len(_skipped)} test(s) skipped:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def require_root_tools(*tools: str) -> None:
    """Skip (locally) unless we are root and every tool is on PATH."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (run make deps)")


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[RunningController]:
    """A real controller process (TLS, loopback) with a fresh network and admin."""
    running = start_controller(tmp_path)
    try:
        yield running
    finally:
        running.stop()
