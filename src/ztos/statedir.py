"""State directories hold secrets, so they are owner-only and checked at start.

The controller's directory holds ``directory.db`` (with its ``-wal`` and
``-shm``, which carry the zone's TSIG secrets and token hashes) and the CA
key; an agent's holds its TLS and WireGuard keys, its TSIG secret and the
profile with its token. A directory other local users can enter leaks all of
it, so: directories are created 0700 and files 0600 (a process umask of 077
makes every later file so too), whatever a previous version left readable is
tightened, and a process refuses to start on a directory group or others can
reach rather than trusting files that may already have been read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ztos.errors import InvalidInput

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def create_private(directory: Path) -> Path:
    """Create ``directory`` (and missing parents) owner-only; an existing one is left as it is."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return directory


def check_private(directory: Path, what: str = "state directory") -> None:
    """Refuse a ``directory`` that group or others can read, write or enter."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & ~DIR_MODE:
        raise InvalidInput(
            f"{what} {directory} is mode {mode:04o}: other users can reach the secrets in it; "
            f"check who read them, then run: chmod 700 {directory}",
            code="state_dir_exposed",
        )


def tighten(*paths: Path) -> None:
    """Take group and others' bits off ``paths`` (a directory with all under it), as
    older versions left them; named paths only, never a whole home directory."""
    for top in paths:
        if not top.exists() or top.is_symlink():
            continue
        for path in (top, *top.rglob("*")) if top.is_dir() else (top,):
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink() and mode & ~DIR_MODE:
                path.chmod(mode & DIR_MODE)


def secure(directory: Path, *secrets: Path, what: str = "state directory") -> None:
    """At a process's start: create ``directory`` owner-only, refuse it if others can
    reach it, tighten the ``secrets`` in it, and make every file this process creates
    from now on 0600 (a process-wide umask: call it from entry points only)."""
    create_private(directory)
    check_private(directory, what)
    tighten(*secrets)
    os.umask(PRIVATE_UMASK)


def secure_controller(db: Path, pki_dir: Path) -> None:
    """``secure`` for the controller: the database with its WAL, shared memory and
    journal, the CA and server keys, the DNS state (TSIG secrets, BIND's files)."""
    sidecars = (db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    secure(db.parent, db, *sidecars, pki_dir, db.parent / "dns")
    if not pki_dir.resolve().is_relative_to(db.parent.resolve()):
        secure(pki_dir, pki_dir, what="CA directory")


def secure_agent(state_dir: Path) -> None:
    """``secure`` for an agent: its keys, TSIG secret, token-bearing profile and the
    rest of what it keeps at the top of its state directory."""
    files = [path for path in state_dir.iterdir() if path.is_file()] if state_dir.is_dir() else []
    secure(state_dir, *files)
