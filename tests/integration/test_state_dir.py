"""Secrets at rest: the controller's and agents' state is owner-only, and a process
refuses to start on a state directory other local users can reach.

An unprivileged user (``nobody``, via ``setpriv``) tries to read what a real
controller wrote; the base directory is made world-traversable so only ZTOS's
own modes stand in the way (pytest's tmp_path alone would hide a regression).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ZTOS, RunningController, start_controller
from ztos import statedir

SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def nobody_reads(path: Path) -> bool:
    result = subprocess.run([*SETPRIV, "cat", str(path)], capture_output=True, timeout=10, check=False)
    return result.returncode == 0


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A 0755 directory under /tmp: anyone may traverse it, so ZTOS's modes are all that count."""
    base = Path(tempfile.mkdtemp(prefix="ztos-t9-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def served(open_base: Path) -> Iterator[RunningController]:
    running = start_controller(open_base)
    try:
        yield running
    finally:
        running.stop()


def test_nobody_cannot_read_the_controller_database_or_its_wal(served: RunningController) -> None:
    if shutil.which("setpriv") is None or not nobody_reads(Path("/etc/hostname")):
        pytest.skip("needs root and setpriv to act as nobody")
    served.ztos("tenant", "create", "blue")  # a write: the WAL holds data now
    state = served.db.parent
    wal = state / "directory.db-wal"
    secrets = [served.db, wal, state / "directory.db-shm", state / "pki" / "ca.key"]
    assert all(path.exists() for path in secrets), [p for p in secrets if not p.exists()]
    control = state.parent / "readable"
    control.write_text("anyone may read this\n")
    control.chmod(0o644)
    assert nobody_reads(control), "setpriv as nobody works at all"

    assert mode_of(state) == 0o700
    assert {path.name: mode_of(path) for path in secrets} == {path.name: 0o600 for path in secrets}
    assert not nobody_reads(served.db) and not nobody_reads(wal)
    state.chmod(0o755)  # even with the directory opened by mistake, the files stay closed
    try:
        assert not nobody_reads(served.db) and not nobody_reads(wal)
    finally:
        state.chmod(0o700)


def test_controller_refuses_to_start_on_a_directory_others_can_read(served: RunningController) -> None:
    served.stop()
    state = served.db.parent
    state.chmod(0o755)
    result = subprocess.run(
        [*ZTOS, "controller", "serve", "--db", str(served.db), "--listen", "127.0.0.1:1"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = one_line_error(result)
    assert f"chmod 700 {state}" in line and "[state_dir_exposed]" in line, line
    assert mode_of(state) == 0o755, "refused, not silently fixed: the secrets may have been read"


def test_controller_tightens_files_an_older_version_left_readable(served: RunningController) -> None:
    served.stop()
    served.db.chmod(0o644)
    (served.db.parent / "pki" / "ca.crt").chmod(0o644)
    served.start()
    assert mode_of(served.db) == 0o600
    assert mode_of(served.db.parent / "pki" / "ca.crt") == 0o600


@pytest.mark.parametrize("verb", [["agent", "run"], ["enroll", "--profile", "/nonexistent.yaml"]])
def test_agent_refuses_a_state_directory_others_can_read(open_base: Path, verb: list[str]) -> None:
    state = open_base / "agent"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "wg.key").write_text("not really a key\n")
    result = subprocess.run(
        [*ZTOS, *verb, "--state-dir", str(state)], capture_output=True, text=True, timeout=60, check=False
    )
    line = one_line_error(result)
    assert f"chmod 700 {state}" in line and "[state_dir_exposed]" in line, line


def test_a_new_state_directory_is_created_owner_only(open_base: Path) -> None:
    state = open_base / "fresh" / "agent"
    statedir.create_private(state)
    assert mode_of(state) == 0o700
    statedir.check_private(state)
