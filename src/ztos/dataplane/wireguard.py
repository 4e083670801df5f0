"""WireGuard devices behind one interface: kernel (via ``wg``) or wireguard-go (via UAPI).

Why two paths: this kernel (and CI's) has no WireGuard module, so ZTOS runs
Debian's wireguard-go, which is controlled through a UNIX socket speaking the
UAPI text protocol (``get=1``/``set=1``, keys in hex). Where a kernel module
exists there is no such socket, so ``wg set``/``wg show dump`` (base64 keys) is
used instead. Which one applies is detected at run time with a throw-away
``wireguard`` link (``links.kind_supported``), never assumed.

Both paths implement ``WireGuardDevice``; the reconciler sees nothing else.
Errors are ``ToolError`` with the tool's own text (wg's stderr, the UAPI errno
and wireguard-go's log line), the original exception kept as the cause.

wireguard-go is started in the foreground (``-f``) as a child of the agent,
inside the target namespace (``ip netns exec NS``) in its own session, so an
agent restart or a Ctrl-C does not take the mesh down; the next agent finds it
again through its socket. Sockets live in ``/var/run/wireguard/NAME.sock`` for
*all* namespaces, so interface names must be unique per host: a socket owned by
a wireguard-go in another namespace (checked with SO_PEERCRED) is a ``Conflict``.
Deleting the tun link makes wireguard-go exit; ``WireGuardGo.stop`` then reaps
it (or signals it, bounded, if it does not go).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ztos.dataplane import keys, links
from ztos.dataplane.nsexec import netns_argv, run_in_netns
from ztos.dataplane.state import Backend, ObservedPeer, PeerSpec, normalize_endpoint
from ztos.errors import Conflict, NotFound, ToolError

SOCKET_DIR = Path("/var/run/wireguard")
NETNS_DIR = Path("/run/netns")
UAPI_TIMEOUT = 5.0
MAX_REPLY = 16 * 1024 * 1024
START_TIMEOUT = 5.0
STOP_TIMEOUT = 3.0
WG_TIMEOUT = 10.0


@dataclass(frozen=True)
class DeviceState:
    """What WireGuard itself reports (the link side comes from ``links``)."""

    public_key: str | None
    listen_port: int | None
    peers: tuple[ObservedPeer, ...]


class WireGuardDevice(Protocol):
    """One WireGuard interface, whoever implements it."""

    name: str
    backend: Backend

    def state(self) -> DeviceState: ...

    def set_private_key(self, path: str) -> None: ...

    def set_listen_port(self, port: int) -> None: ...

    def set_peer(self, peer: PeerSpec) -> None: ...

    def remove_peer(self, public_key: str) -> None: ...


# --- discovery -----------------------------------------------------------------


def detect_backend(netns: str | None = None) -> Backend:
    """Kernel WireGuard when the kernel can create a ``wireguard`` link, else wireguard-go."""
    return Backend.KERNEL if links.kind_supported("wireguard", netns) else Backend.USERSPACE


def socket_path(name: str, socket_dir: Path = SOCKET_DIR) -> Path:
    return socket_dir / f"{name}.sock"


def open_device(
    name: str, netns: str | None = None, *, socket_dir: Path = SOCKET_DIR
) -> WireGuardDevice | None:
    """The device behind link ``name``, or None when nothing controls it.

    A ``tun`` link with no live socket is a wireguard-go that died (or a tun
    someone else owns): None, and the reconciler recreates it.
    """
    link = links.get_link(name, netns)
    if link is None:
        return None
    if link.kind == "wireguard":
        return WgToolDevice(name, netns)
    if link.kind != "tun":
        raise Conflict(
            f"link {name} exists as {link.kind or 'a plain device'}, not WireGuard: "
            "delete it or pick another interface name"
        )
    path = socket_path(name, socket_dir)
    pid = socket_owner(path)
    if pid is None:
        return None
    check_same_netns(pid, netns, name)
    return UapiDevice(name, path)


def check_name_free(name: str, netns: str | None, *, socket_dir: Path = SOCKET_DIR) -> None:
    """Before creating ``name``: refuse when its socket is served from another namespace."""
    pid = socket_owner(socket_path(name, socket_dir))
    if pid is not None:
        check_same_netns(pid, netns, name)


def socket_owner(path: Path) -> int | None:
    """PID of the process serving a UAPI socket (SO_PEERCRED), None if nobody does."""
    creds = struct.Struct("3i")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(UAPI_TIMEOUT)
            sock.connect(str(path))
            pid, _uid, _gid = creds.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds.size))
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError as exc:
        raise ToolError(f"wireguard-go socket {path}: {exc.strerror or exc}") from exc
    return int(pid)


def check_same_netns(pid: int, netns: str | None, name: str) -> None:
    """Refuse a socket whose wireguard-go runs in another namespace (names clash)."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        ours = os.stat(NETNS_DIR / netns if netns else "/proc/thread-self/ns/net")
    except OSError:
        return  # the process just exited: the caller will find the socket dead
    if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
        raise Conflict(
            f"{socket_path(name)} belongs to wireguard-go pid {pid} in another network "
            f"namespace; WireGuard interface names must be unique per host: rename {name}"
        )


# --- userspace: the UAPI client ----------------------------------------------------


class UapiDevice:
    """wireguard-go (or any UAPI implementation) through its control socket."""

    backend = Backend.USERSPACE

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def state(self) -> DeviceState:
        return parse_uapi_get(self._request("get=1\n\n"))

    def set_private_key(self, path: str) -> None:
        self._set([f"private_key={keys.b64_to_hex(keys.read_private_key(path))}"])

    def set_listen_port(self, port: int) -> None:
        self._set([f"listen_port={port}"])

    def set_peer(self, peer: PeerSpec) -> None:
        self._set(uapi_peer_lines(peer))

    def remove_peer(self, public_key: str) -> None:
        self._set([f"public_key={keys.b64_to_hex(public_key)}", "remove=true"])

    def _set(self, lines: list[str]) -> None:
        self._request("set=1\n" + "".join(line + "\n" for line in lines) + "\n")

    def _request(self, text: str) -> list[tuple[str, str]]:
        reply = self._exchange(text.encode())
        pairs = parse_uapi_pairs(reply)
        status = int(dict(pairs).get("errno", "0"))
        if status != 0:
            raise ToolError(self._error_text(text, status))
        return pairs

    def _exchange(self, request: bytes) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(UAPI_TIMEOUT)
                sock.connect(str(self.path))
                sock.sendall(request)
                return _read_reply(sock)
        except OSError as exc:
            raise ToolError(f"wireguard-go {self.name}: UAPI {self.path}: {exc.strerror or exc}") from exc

    def _error_text(self, request: str, status: int) -> str:
        verb = request.split("\n", 1)[0]
        detail = os.strerror(abs(status))
        log = _log_tail(socket_owner(self.path))
        return f"wireguard-go {self.name}: {verb} failed: errno {status} ({detail}){log}"


def _read_reply(sock: socket.socket) -> str:
    data = b""
    while not (data.endswith(b"\n\n") and b"errno=" in data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REPLY:
            raise ToolError(f"UAPI reply larger than {MAX_REPLY} bytes")
    return data.decode()


def _log_tail(pid: int | None) -> str:
    """wireguard-go logs why it refused a set; its stdout is our log file."""
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/fd/1", "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - 400))
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""


def parse_uapi_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs.append((key, value))
    return pairs


def parse_uapi_get(pairs: list[tuple[str, str]]) -> DeviceState:
    """Turn a ``get=1`` reply (key/value pairs) into a ``DeviceState``.

    The reply holds the private key: it is used to derive the public key and
    dropped here, so it never leaves this function.
    """
    public_key: str | None = None
    listen_port: int | None = None
    peers: list[dict[str, list[str]]] = []
    for key, value in pairs:
        if key == "public_key":
            peers.append({})
        if peers:
            peers[-1].setdefault(key, []).append(value)
        elif key == "private_key" and value.strip("0"):
            public_key = keys.public_key_of(keys.hex_to_b64(value))
        elif key == "listen_port":
            listen_port = int(value)
    return DeviceState(public_key, listen_port, tuple(_uapi_peer(p) for p in peers))


def _uapi_peer(fields: dict[str, list[str]]) -> ObservedPeer:
    def one(key: str, default: str = "0") -> str:
        return fields.get(key, [default])[0]

    seconds = int(one("last_handshake_time_sec")) + int(one("last_handshake_time_nsec")) / 1e9
    endpoint = one("endpoint", "")
    return ObservedPeer(
        public_key=keys.hex_to_b64(one("public_key")),
        endpoint=normalize_endpoint(endpoint) if endpoint else None,
        allowed_ips=tuple(sorted(fields.get("allowed_ip", []))),
        persistent_keepalive=int(one("persistent_keepalive_interval")),
        last_handshake=seconds or None,
        rx_bytes=int(one("rx_bytes")),
        tx_bytes=int(one("tx_bytes")),
    )


def uapi_peer_lines(peer: PeerSpec) -> list[str]:
    """``set=1`` lines that make a peer exactly ``peer`` (allowed IPs replaced)."""
    lines = [f"public_key={keys.b64_to_hex(peer.public_key)}"]
    if peer.endpoint is not None:
        lines.append(f"endpoint={normalize_endpoint(peer.endpoint)}")
    lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive}")
    lines.append("replace_allowed_ips=true")
    lines.extend(f"allowed_ip={cidr}" for cidr in peer.allowed_ips)
    return lines


# --- kernel: the wg tool -------------------------------------------------------------


class WgToolDevice:
    """Kernel WireGuard through ``wg`` (which also drives wireguard-go sockets)."""

    backend = Backend.KERNEL

    def __init__(self, name: str, netns: str | None = None, wg: str = "wg") -> None:
        self.name = name
        self.netns = netns
        self.wg = wg

    def state(self) -> DeviceState:
        return parse_wg_dump(self._wg("show", self.name, "dump"))

    def set_private_key(self, path: str) -> None:
        keys.read_private_key(path)  # same permission check as the UAPI path
        self._wg("set", self.name, "private-key", path)

    def set_listen_port(self, port: int) -> None:
        self._wg("set", self.name, "listen-port", str(port))

    def set_peer(self, peer: PeerSpec) -> None:
        self._wg("set", self.name, *wg_peer_args(peer))

    def remove_peer(self, public_key: str) -> None:
        self._wg("set", self.name, "peer", public_key, "remove")

    def _wg(self, *args: str) -> str:
        return run_in_netns([self.wg, *args], self.netns)


def wg_peer_args(peer: PeerSpec) -> list[str]:
    """``wg set`` arguments; ``allowed-ips`` there replaces the whole list."""
    args = ["peer", peer.public_key]
    if peer.endpoint is not None:
        args += ["endpoint", normalize_endpoint(peer.endpoint)]
    args += ["persistent-keepalive", str(peer.persistent_keepalive or "off")]
    return [*args, "allowed-ips", ",".join(peer.allowed_ips)]


def parse_wg_dump(text: str) -> DeviceState:
    """Parse ``wg show IF dump``: an interface line, then one tab-separated line per peer."""
    rows = [line.split("\t") for line in text.strip().splitlines()]
    if not rows or len(rows[0]) < 4:
        raise ToolError(f"unexpected `wg show dump` output: {text[:200]!r}")
    public_key = None if rows[0][1] == "(none)" else rows[0][1]
    port = int(rows[0][2])
    return DeviceState(public_key, port or None, tuple(_dump_peer(row) for row in rows[1:]))


def _dump_peer(row: list[str]) -> ObservedPeer:
    key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = row[:8]
    return ObservedPeer(
        public_key=key,
        endpoint=None if endpoint == "(none)" else normalize_endpoint(endpoint),
        allowed_ips=() if allowed == "(none)" else tuple(sorted(allowed.split(","))),
        persistent_keepalive=0 if keepalive == "off" else int(keepalive),
        last_handshake=float(handshake) or None,
        rx_bytes=int(rx),
        tx_bytes=int(tx),
    )


# --- lifecycle ----------------------------------------------------------------------


class WireGuardGo:
    """Starts, finds and stops wireguard-go processes, and reaps the ones it started.

    The agent keeps one of these for its lifetime (tests make their own). It
    holds the ``Popen`` of every child so none is left a zombie; processes it
    did not start (a previous agent's) are found by their socket's SO_PEERCRED.
    """

    def __init__(self, binary: str = "wireguard-go", socket_dir: Path = SOCKET_DIR) -> None:
        self.binary = binary
        self.socket_dir = socket_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, name: str, netns: str | None = None, timeout: float = START_TIMEOUT) -> int:
        """Start ``wireguard-go -f name`` in ``netns`` and wait for its socket; the pid."""
        path = socket_path(name, self.socket_dir)
        self._clear_stale_socket(path, name, netns)
        with tempfile.TemporaryFile(prefix=f"wireguard-go-{name}-") as log:
            proc = self._spawn(name, netns, log)
            self._children[proc.pid] = proc
            self._wait_socket(proc, name, path, log, timeout)
        return proc.pid

    def stop(self, name: str, netns: str | None = None, timeout: float = STOP_TIMEOUT) -> bool:
        """Delete the link (wireguard-go then exits), wait for the process, reap it.

        False when there was nothing to stop. A namespace already gone is fine.
        """
        path = socket_path(name, self.socket_dir)
        pid = socket_owner(path)
        if pid is not None:
            check_same_netns(pid, netns, name)
        deleted = _delete_link_if_netns(name, netns)
        if pid is not None:
            self.end(pid, timeout)
        path.unlink(missing_ok=True)
        self.reap()
        return deleted or pid is not None

    def end(self, pid: int, timeout: float = STOP_TIMEOUT, *, wait_first: bool = True) -> None:
        """Wait for ``pid`` to exit, then TERM, then KILL, each step bounded by ``timeout``."""
        kills = (signal.SIGTERM, signal.SIGKILL)
        steps = (None, *kills) if wait_first else kills
        with _pidfd(pid) as fd:
            for sig in steps:
                if fd is None:
                    break
                if sig is not None:
                    signal.pidfd_send_signal(fd, sig)
                if _exited(fd, timeout):
                    break
        proc = self._children.pop(pid, None)
        if proc is not None:
            proc.wait(timeout)
        else:  # started by an earlier agent; ours to reap only if we are its subreaper
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def reap(self) -> None:
        """Collect children that exited on their own (crash, link deleted by hand)."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def _spawn(self, name: str, netns: str | None, log: IO[bytes]) -> subprocess.Popen[bytes]:
        argv = [self.binary, "-f", name]
        full = netns_argv(argv, netns)
        env = {**os.environ, "LOG_LEVEL": "error"}
        try:
            return subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own process group, not its own session: a terminal's Ctrl-C to the
                # agent leaves the data plane up, and the daemon stays in the agent's
                # scheduling autogroup (a new session put it in its own, and it moved
                # 0.70-0.93x the traffic of wireguard-go started by hand; bench/mesh.py).
                process_group=0,
            )
        except OSError as exc:
            raise ToolError(f"cannot start {self.binary}: {exc.strerror or exc}") from exc

    def _wait_socket(
        self, proc: subprocess.Popen[bytes], name: str, path: Path, log: IO[bytes], timeout: float
    ) -> None:
        """Bounded wait for the socket, returning early (with its log) if the child dies."""
        deadline = time.monotonic() + timeout
        with _pidfd(proc.pid) as fd:
            while time.monotonic() < deadline:
                if socket_owner(path) == proc.pid:
                    return
                if _exited(fd, 0.01):
                    proc.wait(STOP_TIMEOUT)
                    self._children.pop(proc.pid, None)
                    raise ToolError(f"wireguard-go {name} exited: {_read_log(log)}")
        self.end(proc.pid, STOP_TIMEOUT, wait_first=False)
        raise ToolError(f"wireguard-go {name}: no socket at {path} after {timeout:.0f}s")

    def _clear_stale_socket(self, path: Path, name: str, netns: str | None) -> None:
        pid = socket_owner(path)
        if pid is not None:
            check_same_netns(pid, netns, name)
            raise Conflict(f"wireguard-go for {name} already runs (pid {pid})")
        path.unlink(missing_ok=True)


def sweep(prefix: str, launcher: WireGuardGo | None = None) -> list[str]:
    """Stop every wireguard-go whose interface name starts with ``prefix``.

    For lab and test cleanup, where the namespace may already be gone: the
    process is found by its socket and told to exit (it removes its tun).
    """
    launcher = launcher or WireGuardGo()
    stopped = []
    for path in sorted(launcher.socket_dir.glob(f"{prefix}*.sock")):
        pid = socket_owner(path)
        if pid is not None:
            launcher.end(pid, wait_first=False)
        path.unlink(missing_ok=True)
        stopped.append(path.stem)
    return stopped


def _delete_link_if_netns(name: str, netns: str | None) -> bool:
    try:
        return links.delete_link(name, netns)
    except NotFound:
        return False


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd, which becomes readable when the process exits (None: already gone)."""
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _exited(fd: int | None, timeout: float) -> bool:
    """Block up to ``timeout`` s for the process behind a pidfd to exit."""
    if fd is None:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _read_log(log: IO[bytes]) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text.splitlines()[-1] if text else "(no output)"
