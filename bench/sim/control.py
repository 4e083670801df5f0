"""The one real controller: ``ztos init`` + ``ztos controller serve`` on loopback.

Also what the simulator reads about that process (CPU time and memory from
``/proc``) and the open-file limit both sides need: every simulated agent
holds one keep-alive TLS connection, so N agents need N descriptors in the
simulator and N in the controller (which inherits the raised limit).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.benchlib import BenchError, cpu_seconds, free_port, stop, wait_healthy

ZTOS = [sys.executable, "-m", "ztos"]
FD_HEADROOM = 256  # the controller's own files, the admin lanes, the directory


def raise_fd_limit(agents: int) -> int:
    """Soft open-file limit up to the hard one; refuse a run the hard limit cannot hold."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < agents + FD_HEADROOM:
        raise BenchError(
            f"{agents} agents need about {agents + FD_HEADROOM} open files per process, "
            f"but the hard limit is {hard} (raise it: ulimit -Hn, or limits.conf)"
        )
    return hard


@dataclass
class Usage:
    """The controller process's CPU time so far and its memory now / at peak."""

    cpu_s: float
    rss_mib: float
    peak_rss_mib: float


def usage(pid: int) -> Usage:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return Usage(cpu_seconds(pid), int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024)


@dataclass
class Controller:
    work: Path
    url: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.work / "admin"

    @property
    def db(self) -> Path:
        return self.work / "controller" / "directory.db"

    @property
    def log(self) -> Path:
        return self.work / "controller.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, posture_timeout: float) -> None:
        """A fresh network, served with a posture timeout longer than any simulated pass gap
        (``--posture-timeout``, a documented serve flag), so that no host is marked stale
        by a simulator that fell behind: that would be churn nobody asked for."""
        env = {**os.environ, "ZTOS_HOME": str(self.home)}
        init = [*ZTOS, "init", "--db", str(self.db), "--controller-url", self.url]
        subprocess.run(init, env=env, check=True, capture_output=True, timeout=120)
        port = self.url.rsplit(":", 1)[1]
        serve = [*ZTOS, "controller", "serve", "--db", str(self.db), "--listen", f"127.0.0.1:{port}"]
        serve += ["--posture-timeout", str(posture_timeout)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(serve, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.home, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process)


def new_controller(work: Path) -> Controller:
    return Controller(work, f"https://127.0.0.1:{free_port()}")
