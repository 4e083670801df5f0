"""Posture checks: what this host says about its own health, reported every pass.

Pluggable: each check is a function returning attributes; the built-in ones
read the agent version, the OS release and patch level, and whether the root
filesystem sits on dm-crypt; every file in ``/etc/ztos/posture.d/`` (or the
agent's ``posture.d``) adds ``custom.<file name>`` = its first line, so an
MDM or a script can feed ZTOS without code. The controller stores them as
``posture.*`` node attributes when they change, and marks a host whose
reports stop as ``posture.compliant=false``/``posture.stale=true``.
``healthy`` is never reported by the agent: an admin's (or an MDM's) verdict
is ``admin.healthy``, set with ``ztos node set-attr``, which no host report can
write (docs/policy.md, "Who may write which attribute").
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from ztos import __version__

Check = Callable[[], dict[str, str]]
SYSTEM_DIR = Path("/etc/ztos/posture.d")
MAX_VALUE = 200


def agent_version() -> dict[str, str]:
    return {"agent_version": __version__}


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    fields: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            fields[key] = value.strip('"')
    return {
        "os": f"{fields.get('ID', 'unknown')}-{fields.get('VERSION_ID', '')}".rstrip("-"),
        "kernel": platform.release(),
    }


def disk_encrypted(mounts: Path = Path("/proc/self/mounts")) -> dict[str, str]:
    """True when / is on a device-mapper crypt target (``/dev/mapper/*crypt*``, LUKS)."""
    root = next(
        (line.split()[0] for line in mounts.read_text().splitlines() if line.split()[1:2] == ["/"]), ""
    )
    return {"disk_encrypted": "true" if "crypt" in root or root.startswith("/dev/dm-") else "false"}


def custom_files(*directories: Path) -> Check:
    def check() -> dict[str, str]:
        found: dict[str, str] = {}
        for directory in directories:
            for item in sorted(directory.glob("*")) if directory.is_dir() else []:
                if item.is_file() and item.name.replace("-", "_").replace(".", "_").isidentifier():
                    found[f"custom.{item.name}"] = (
                        item.read_text(errors="replace").strip().split("\n")[0][:MAX_VALUE]
                    )
        return found

    return check


def default_checks(state_dir: Path) -> list[Check]:
    return [agent_version, os_release, disk_encrypted, custom_files(SYSTEM_DIR, state_dir / "posture.d")]


def collect(checks: list[Check]) -> dict[str, str]:
    report = {"compliant": "true"}
    for check in checks:
        try:
            report.update(check())
        except OSError as exc:
            report[f"error.{getattr(check, '__name__', 'check')}"] = str(exc)[:MAX_VALUE]
    return report
