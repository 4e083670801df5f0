"""The FRR adapter: runs zebra and bgpd for one instance and talks to them via vtysh.

This is the only module that executes FRR binaries. Everything it reads comes
back as plain data (``ztos.routing.evpn``); every failure of a daemon or of
vtysh becomes ``ToolError`` carrying FRR's own words.

How an instance lives (several share one machine in the lab, so every path
is per instance and nothing is found by a process-name pattern):

* Files: ``config_dir`` (owned by frr, mode 0750; every parent must be
  traversable by frr, which the daemons switch to) holds ``frr.conf`` (the
  whole rendered config), ``boot.conf`` (what the daemons read at start),
  ``vtysh.conf`` (empty, so vtysh never reads the host's /etc/frr one), the
  pid files and ``frr.log``. Sockets live in ``/var/run/frr/<instance>``
  because ``-N <instance>`` puts them there.
* Start: ``zebra`` then ``bgpd``, each ``-d -N <instance> -f boot.conf -i
  <pid file> -P 0`` (no TCP vty, so instances never fight over a port), in
  ``netns`` via ``ip netns exec`` or in the current namespace. ``-d`` returns
  once the daemon is up, and the daemons outlive the agent, so restarting
  ztosd does not flap BGP. If only one daemon is alive, both are restarted:
  bgpd's EVPN state is tied to the zebra it registered with.
* Apply and reload share one path: the rendered config is checked with
  ``vtysh -C`` (a dry run), then pushed with ``vtysh -f`` after the ``no ...``
  lines that ``frrconf.removals`` computes from the running config. Pushing
  a line FRR already has changes nothing, so sessions to unchanged peers stay
  up (restarting bgpd would flap all of them, and ``frr-reload.py`` is not in
  Debian's ``frr`` package). frr.conf on disk is replaced (atomically) only
  after the push worked, so a rejected config leaves the last good one.
* ``apply()`` does nothing when frr.conf already holds the rendered text,
  both daemons run and FRR's running config matches the spec (AS, router-id,
  neighbors, EVPN), so a hand edit through vtysh is repaired next pass.
* Stop: bgpd then zebra, SIGTERM then SIGKILL, each wait bounded and on a
  pidfd. bgpd closes its sessions, so peers withdraw this host's routes at
  once; zebra removes the FDB entries it installed.
"""

from __future__ import annotations

import contextlib
import enum
import grp
import itertools
import os
import pwd
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ztos.errors import Conflict, InvalidInput, ToolError
from ztos.routing import evpn, frrconf
from ztos.routing.spec import FrrSpec

BIN_DIR = Path("/usr/lib/frr")
RUN_ROOT = Path("/var/run/frr")
NETNS_DIR = Path("/run/netns")
DAEMONS = ("zebra", "bgpd")  # start order; stop in reverse
FRR_USER = "frr"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
VTYSH_TIMEOUT = 15.0
POLL_INTERVAL = 0.02
ZEBRA_NETLINK_BUFFER = 90_000_000  # Debian's default zebra_options: room for large FDB dumps
MAX_VNI = 16_777_215


class ApplyResult(enum.StrEnum):
    UNCHANGED = "unchanged"
    STARTED = "started"  # daemons were (re)started and configured
    RELOADED = "reloaded"  # running daemons got the new config


class FrrInstance:
    """zebra + bgpd for one ``FrrSpec``, in ``netns`` (None: the caller's namespace)."""

    def __init__(
        self,
        spec: FrrSpec,
        *,
        netns: str | None = None,
        bin_dir: Path = BIN_DIR,
        run_root: Path = RUN_ROOT,
        vtysh: str = "vtysh",
    ) -> None:
        frrconf.validate(spec)
        self.spec = spec
        self.netns = netns
        self.bin_dir = bin_dir
        self.vtysh_bin = vtysh
        self.config_dir = Path(spec.config_dir)
        self.socket_dir = run_root / spec.instance
        self.config_path = self.config_dir / "frr.conf"
        self.boot_path = self.config_dir / "boot.conf"

    def pid_path(self, daemon: str) -> Path:
        return self.config_dir / f"{daemon}.pid"

    def vty_path(self, daemon: str) -> Path:
        return self.socket_dir / f"{daemon}.vty"

    # --- lifecycle ------------------------------------------------------------------

    def apply(self) -> ApplyResult:
        """Make the running instance match the spec; see the module docstring for how."""
        text = frrconf.render(self.spec)
        owner = _frr_owner()
        self._prepare(owner)
        started = self._ensure_daemons()
        running = frrconf.parse_running(self.running_config())
        if not started and _read(self.config_path) == text and running == frrconf.summarize(self.spec):
            return ApplyResult.UNCHANGED
        self._push("\n".join([*frrconf.removals(running, self.spec), text]), owner)
        _write_atomic(self.config_path, text, owner)
        return ApplyResult.STARTED if started else ApplyResult.RELOADED

    def plan(self) -> list[str]:
        """What ``apply`` would do, read without starting or pushing anything."""
        if not self.running():
            return [f"+ frr {self.spec.instance}: start zebra and bgpd"]
        text = frrconf.render(self.spec)
        running = frrconf.parse_running(self.running_config())
        if _read(self.config_path) == text and running == frrconf.summarize(self.spec):
            return []
        return [f"~ frr {self.spec.instance}: reload the configuration"]

    def stop(self) -> bool:
        """Stop bgpd then zebra and remove the socket dir; False if nothing ran."""
        stopped = False
        for daemon in reversed(DAEMONS):
            pid = self.pid(daemon)
            if pid is not None:
                _terminate(pid, STOP_TIMEOUT)
                stopped = True
            self.pid_path(daemon).unlink(missing_ok=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return stopped

    def running(self) -> bool:
        return all(self.pid(daemon) is not None for daemon in DAEMONS)

    def pid(self, daemon: str) -> int | None:
        """The live ``daemon`` of this instance: by pid file, else by who serves its vty socket."""
        for pid in (_read_pid(self.pid_path(daemon)), _socket_peer(self.vty_path(daemon))):
            if pid is not None and _is_instance(pid, daemon, self.spec.instance):
                return pid
        return None

    # --- queries --------------------------------------------------------------------

    def bgp_summary(self) -> tuple[evpn.BgpPeer, ...]:
        return evpn.parse_neighbors(self.show("show bgp neighbors json"))

    def evpn_vnis(self) -> tuple[evpn.EvpnVni, ...]:
        return evpn.parse_vnis(self.show("show evpn vni detail json"))

    def evpn_routes(self, route_type: int) -> tuple[evpn.EvpnRoute, ...]:
        """Best EVPN routes of type 2 (MAC/IP) or 3 (IMET), local and learned."""
        name = evpn.ROUTE_TYPES.get(route_type)
        if name is None:
            raise InvalidInput(f"EVPN route type {route_type!r}: use 2 (MAC/IP) or 3 (IMET)")
        text = self.show(f"show bgp l2vpn evpn route detail type {name} json")
        return evpn.parse_routes(text, route_type)

    def evpn_macs(self, vni: int) -> tuple[evpn.EvpnMac, ...]:
        if isinstance(vni, bool) or not 1 <= vni <= MAX_VNI:
            raise InvalidInput(f"VNI {vni!r} is out of range 1..{MAX_VNI}")
        return evpn.parse_macs(self.show(f"show evpn mac vni {vni} json"))

    def running_config(self) -> str:
        return self.show("show running-config")

    def show(self, command: str) -> str:
        """Run one vtysh command against this instance; its output."""
        return self._vtysh(["--vty_socket", str(self.socket_dir), "-c", command], command)

    # --- apply steps ------------------------------------------------------------------

    def _prepare(self, owner: tuple[int, int]) -> None:
        """Directories, boot config, vtysh.conf and log file, owned as the daemons need.

        The log file is created here for frr: one created by a daemon while it is
        still root is one it can no longer reopen after dropping to frr.
        """
        _mkdir_traversable(self.config_dir.parent)
        self.config_dir.mkdir(exist_ok=True)
        _own(self.config_dir, owner, 0o750)
        _check_traversable(self.config_dir, owner)
        _mkdir_traversable(self.socket_dir.parent)
        self.socket_dir.mkdir(exist_ok=True)
        _own(self.socket_dir, owner, 0o755)
        _write_atomic(self.boot_path, frrconf.render_boot(self.spec), owner)
        _write_atomic(self.config_dir / "vtysh.conf", "", owner)
        log = Path(frrconf.log_path(self.spec))
        log.touch(exist_ok=True)
        _own(log, owner, 0o640)

    def _ensure_daemons(self) -> bool:
        """Start the daemons unless both run; True when they were (re)started."""
        pids = {daemon: self.pid(daemon) for daemon in DAEMONS}
        for pid in pids.values():
            if pid is not None:
                _check_netns(pid, self.netns, self.spec.instance)
        if all(pid is not None for pid in pids.values()):
            return False
        for daemon in reversed(DAEMONS):
            pid = pids[daemon]
            if pid is not None:
                _terminate(pid, STOP_TIMEOUT)
        for daemon in DAEMONS:
            self._start(daemon)
        return True

    def _start(self, daemon: str) -> None:
        self.pid_path(daemon).unlink(missing_ok=True)
        argv = self._daemon_argv(daemon)
        with tempfile.TemporaryFile() as out:
            try:
                done = subprocess.run(
                    netns_argv(argv, self.netns),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=START_TIMEOUT,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ToolError(f"cannot start {daemon} (FRR instance {self.spec.instance}): {exc}") from exc
            if done.returncode != 0:
                raise ToolError(f"{daemon} for FRR instance {self.spec.instance} failed: {self._why(out)}")
        self._wait(lambda: self.pid(daemon) is not None and self.vty_path(daemon).exists(), f"{daemon} up")

    def _daemon_argv(self, daemon: str) -> list[str]:
        argv = [str(self.bin_dir / daemon), "-d", "-N", self.spec.instance, "-F", frrconf.PROFILE]
        argv += ["-f", str(self.boot_path), "-i", str(self.pid_path(daemon)), "-P", "0"]
        return [*argv, "-s", str(ZEBRA_NETLINK_BUFFER)] if daemon == "zebra" else argv

    def _push(self, text: str, owner: tuple[int, int]) -> None:
        """Dry-run the config, then apply it to the running daemons."""
        staged = self.config_dir / "reload.conf"
        _write_atomic(staged, text, owner)
        try:
            self._vtysh(["-C", "-f", str(staged)], "config check")
            self._vtysh(["--vty_socket", str(self.socket_dir), "-f", str(staged)], "config load")
        finally:
            staged.unlink(missing_ok=True)

    def _vtysh(self, args: list[str], what: str) -> str:
        argv = [self.vtysh_bin, "--config_dir", str(self.config_dir), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=VTYSH_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(f"vtysh {what} (FRR instance {self.spec.instance}): {exc}") from exc
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip() or f"exit status {done.returncode}"
            raise ToolError(f"vtysh {what} (FRR instance {self.spec.instance}): {said}")
        return done.stdout

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                why = self._why()
                raise ToolError(f"FRR instance {self.spec.instance}: no {what} after {timeout:.0f}s: {why}")
            time.sleep(POLL_INTERVAL)

    def _why(self, out: IO[bytes] | None = None) -> str:
        """The daemon's own words: its start output, else the last lines of the log."""
        if out is not None:
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
            if text:
                return text
        return _tail(Path(frrconf.log_path(self.spec)))


# --- processes ------------------------------------------------------------------------


def netns_argv(argv: list[str], netns: str | None) -> list[str]:
    """``argv`` run in ``netns`` (``ip netns exec`` execs it; the daemon forks from there).

    Same rule as ``ztos.dataplane.nsexec``, repeated because routing and the
    data plane are independent layers (see .importlinter).
    """
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _socket_peer(path: Path) -> int | None:
    """PID of the process serving a unix socket (SO_PEERCRED), None if nobody does."""
    creds = struct.Struct("3i")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            pid, _uid, _gid = creds.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds.size))
    except OSError:
        return None
    return int(pid)


def _is_instance(pid: int, daemon: str, instance: str) -> bool:
    """Is ``pid`` a live ``daemon -N instance`` (not a zombie, not a reused pid)?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    names = [arg.decode(errors="replace") for arg in argv]
    tagged = any(a == "-N" and b == instance for a, b in itertools.pairwise(names))
    return state != "Z" and bool(names) and Path(names[0]).name == daemon and tagged


def _check_netns(pid: int, netns: str | None, instance: str) -> None:
    """Refuse to reuse daemons that serve this instance from another namespace."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        ours = os.stat(NETNS_DIR / netns if netns else "/proc/thread-self/ns/net")
    except OSError:
        return  # exited meanwhile: the caller restarts it
    if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
        raise Conflict(
            f"FRR instance {instance} already runs (pid {pid}) in another network namespace; "
            "instance names must be unique per machine: stop it or rename the instance"
        )


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL, each followed by a bounded wait on a pidfd."""
    with _pidfd(pid) as fd:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if fd is None:
                return
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            if _exited(fd, timeout):
                return
    raise ToolError(f"pid {pid} did not exit after SIGKILL")


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd, readable once the process exits (a zombie counts); None if already gone."""
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _exited(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


# --- files ----------------------------------------------------------------------------


def _frr_owner() -> tuple[int, int]:
    try:
        user = pwd.getpwnam(FRR_USER)
    except KeyError as exc:
        raise ToolError(f"no user {FRR_USER!r}: install Debian's frr package (make deps)") from exc
    return user.pw_uid, user.pw_gid


def _own(path: Path, owner: tuple[int, int], mode: int) -> None:
    os.chown(path, *owner)
    os.chmod(path, mode)


def _write_atomic(path: Path, text: str, owner: tuple[int, int], mode: int = 0o640) -> None:
    """Replace ``path`` with ``text`` in one rename, owned by frr; untouched if equal."""
    if _read(path) == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fchown(out.fileno(), *owner)
        os.fchmod(out.fileno(), mode)
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _mkdir_traversable(path: Path) -> None:
    """Create missing parents 0755 whatever the umask: the agent runs under umask 077
    (its state is secret), but the daemons drop to user frr and must pass through."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)


def _check_traversable(path: Path, owner: tuple[int, int]) -> None:
    """The daemons drop to user frr before reading config: every parent must let it through."""
    uid, gid = owner
    groups = {gid, *(g.gr_gid for g in grp.getgrall() if FRR_USER in g.gr_mem)}
    for parent in path.resolve().parents:
        st = parent.stat()
        if not _may_search(st, uid, groups):
            raise InvalidInput(
                f"FRR runs as user {FRR_USER} and cannot reach {path}: {parent} has mode "
                f"{stat.filemode(st.st_mode)}; choose a config_dir whose parents every user can traverse"
            )


def _may_search(st: os.stat_result, uid: int, groups: set[int]) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return " | ".join(text.splitlines()[-lines:]) or "(empty log)"
