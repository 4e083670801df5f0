"""The lab's one adapter for processes: run, spawn, find and stop them by namespace.

Why it exists: the lab starts the controller, the CLI and the agents inside
network namespaces (``ip netns exec NS argv…``, argument lists, never shell
strings), and its cleanup must find every process a lab left behind even when
``lab.json`` is gone. Process discovery therefore never trusts recorded pids
(they may have been reused) and never uses ``pkill -f`` patterns (they can hit
another lab); it reads ``/proc`` instead: a process belongs to a lab when its
network namespace is one of the lab's (inode of ``/proc/PID/ns/net`` equals
that of ``/run/netns/NAME``), or its command line passes a lab-owned argument.

Netlink objects (namespaces, links, addresses, sysctls) are not here: they go
through the data plane's adapter, ``ztos.dataplane.links``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ztos.errors import ToolError

NETNS_DIR = Path("/run/netns")
PROC = Path("/proc")
TCP_LISTEN = "0A"
TCP_ESTABLISHED = "01"
POLL_INTERVAL = 0.05
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def netns_argv(argv: list[str], netns: str | None) -> list[str]:
    """``argv`` prefixed so it runs in ``netns`` (``ip netns exec`` execs it, same pid)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def run(
    argv: list[str], netns: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> str:
    """Run to completion; stdout, or ``ToolError`` with the tool's last stderr line."""
    try:
        done = subprocess.run(
            netns_argv(argv, netns),
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise ToolError(f"{_short(argv)}: {_last_line(exc.stderr or exc.stdout) or exc}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{_short(argv)}: {exc}") from exc
    return done.stdout


def succeeds(argv: list[str], netns: str | None = None, timeout: float = 10.0) -> bool:
    """Run a probe (``ping``) whose exit status is the answer."""
    try:
        done = subprocess.run(
            netns_argv(argv, netns),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    except OSError as exc:
        raise ToolError(f"{_short(argv)}: {exc}") from exc
    return done.returncode == 0


def daemon_argv(argv: list[str], netns: str | None) -> list[str]:
    """``argv`` run in ``netns`` with ``nsenter --net``, which enters only the network namespace.

    Not ``ip netns exec``: that also gives the process a private mount
    namespace, so namespaces an agent creates (tenant VRFs, workloads) would be
    bind-mounted under /run/netns where nobody else can see them.
    """
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else list(argv)


def spawn(argv: list[str], netns: str | None, env: Mapping[str, str], log: Path) -> int:
    """Start a long-running process detached (own session), output appended to ``log``.

    Its own session keeps it alive when the ``ztos lab up`` that started it is
    interrupted; the pid is that of ``argv`` itself because ``nsenter`` execs.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("ab") as out:
            process = subprocess.Popen(
                daemon_argv(argv, netns),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        raise ToolError(f"start {_short(argv)}: {exc}") from exc
    return process.pid


def alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it when it is our own exited child."""
    _reap(pid)
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The argument vector of ``pid`` (empty when it is gone or a kernel thread)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except OSError:
        return None


def pids_in_netns(names: Iterable[str]) -> set[int]:
    """Processes whose network namespace is one of the named ones."""
    inodes = {inode for inode in map(netns_inode, names) if inode is not None}
    if not inodes:
        return set()
    return {pid for pid in _pids() if _net_inode(pid) in inodes}


def pids_matching(predicate: Callable[[list[str]], bool]) -> set[int]:
    """Processes whose argument vector satisfies ``predicate``."""
    return {pid for pid in _pids() if (argv := cmdline(pid)) and predicate(argv)}


def stop(pids: Iterable[int], sig: int = signal.SIGTERM, timeout: float = 5.0) -> set[int]:
    """Signal, wait (bounded), then SIGKILL what is left; the pids that were running."""
    running = {pid for pid in pids if alive(pid)}
    for pid in running:
        send(pid, sig)
    left = wait_gone(running, timeout)
    for pid in left:
        send(pid, signal.SIGKILL)
    if wait_gone(left, timeout):
        raise ToolError(f"processes {sorted(left)} survived SIGKILL for {timeout}s")
    return running


def send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise ToolError(f"signal {sig} to pid {pid}: {exc}") from exc


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` runs, at most ``timeout`` seconds; those still running."""
    deadline = time.monotonic() + timeout
    left = {pid for pid in pids if alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        left = {pid for pid in left if alive(pid)}
    return left


def listening(pid: int, port: int, address: IPAddress | None = None) -> bool:
    """Whether a TCP socket listens on ``port`` (on ``address``, when given) in ``pid``'s
    network namespace: several lab controllers share one namespace and one port."""
    tables = ("tcp6", "tcp") if address is None else ("tcp6" if address.version == 6 else "tcp",)
    return any(_listens(PROC / str(pid) / "net" / table, port, address) for table in tables)


def _listens(table: Path, port: int, address: IPAddress | None) -> bool:
    try:
        rows = table.read_text().splitlines()[1:]
    except OSError:
        return False
    for fields in (row.split() for row in rows):
        local, _, local_port = fields[1].partition(":")
        if int(local_port, 16) != port or fields[3] != TCP_LISTEN:
            continue
        if address is None or proc_net_address(local) == address:
            return True
    return False


def connected(pid: int, address: IPAddress, port: int) -> bool:
    """Whether ``pid``'s network namespace has an established TCP connection to
    ``address``:``port`` (which controller a lab host's agent talks to)."""
    table = PROC / str(pid) / "net" / ("tcp6" if address.version == 6 else "tcp")
    try:
        rows = table.read_text().splitlines()[1:]
    except OSError:
        return False
    for fields in (row.split() for row in rows):
        remote, _, remote_port = fields[2].partition(":")
        if (
            fields[3] == TCP_ESTABLISHED
            and int(remote_port, 16) == port
            and proc_net_address(remote) == address
        ):
            return True
    return False


def proc_net_address(hex_address: str) -> IPAddress:
    """An address as ``/proc/net/tcp{,6}`` prints it: 32-bit words in host byte order."""
    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _pids() -> list[int]:
    me = os.getpid()
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit() and int(p.name) != me]


def _net_inode(pid: int) -> int | None:
    try:
        return os.stat(PROC / str(pid) / "ns" / "net").st_ino
    except OSError:
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _short(argv: list[str]) -> str:
    return " ".join(argv[:4]) + (" …" if len(argv) > 4 else "")


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
