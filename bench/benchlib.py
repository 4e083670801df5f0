"""What several benchmarks share: a controller process on loopback, its CPU time.

Benchmarks are scripts (``python bench/NAME.py``), so this sits beside them
and is imported as a sibling module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from ztos.client import tls_context
from ztos.enroll.identity_dir import IdentityDir

HEALTH = "/api/v1/healthz"


class BenchError(Exception):
    """The benchmark could not measure what it set out to."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(url: str, home: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the controller at ``url`` answers its health check (30 s at most)."""
    verify = tls_context(IdentityDir(home).ca_cert, None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"controller exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}{HEALTH}", verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise BenchError("controller not healthy after 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
