"""Data-plane probes on lab hosts: when did a change reach a host's nftables, WireGuard or flows?

Why: the enforcement tests and ``bench/enforcement.py`` measure the time from an
admin's call returning to each affected host's data plane showing the change,
which is what a user of ZTOS waits for. A ``Probe`` watches one condition on one
host in a thread, started before the change, and notes the first time it holds;
a ``Flow`` is an established TCP connection between hosts that reports when it
is cut. Every probe is bounded in time; times are ``time.time()`` so they compare
with those printed by the flow's own process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable

from ztos.dataplane import nftables, wireguard
from ztos.errors import ToolError, ZtosError
from ztos.lab import procs
from ztos.lab.topology import LabHost

POLL = 0.02
HOST_TABLE = "ztos-host"
ECHO_SERVER = (
    "import socket, sys, threading\n"
    "def echo(c):\n"
    "    for data in iter(lambda: c.recv(64), b''):\n"
    "        c.sendall(data)\n"
    "def serve(port):\n"
    "    s = socket.create_server(('0.0.0.0', port), reuse_port=True)\n"
    "    while True:\n"
    "        threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()\n"
    "for p in map(int, sys.argv[1:]):\n"
    "    threading.Thread(target=serve, args=(p,), daemon=True).start()\n"
    "threading.Event().wait()\n"
)
# One byte echoed every 20 ms; a reply missing for 0.1 s is a cut flow. Ends by itself after argv[3] s.
FLOW_CLIENT = (
    "import socket, sys, time\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); s.settimeout(0.1)\n"
    "print('up', flush=True)\n"
    "ends = time.time() + float(sys.argv[3])\n"
    "while time.time() < ends:\n"
    "    s.sendall(b'x')\n"
    "    try:\n"
    "        s.recv(1)\n"
    "    except OSError:\n"
    "        print('cut', time.time(), flush=True); sys.exit(0)\n"
    "    time.sleep(0.02)\n"
    "print('alive', flush=True)\n"
)


# --- what a host's data plane shows -----------------------------------------------------------


def rule_names(host: LabHost) -> set[str]:
    """Names of the policy rules in the host's nftables (``comment "rN NAME"``)."""
    found = set()
    for obj in nftables.list_ruleset(host.netns)["nftables"]:
        rule = obj.get("rule")
        if rule and rule.get("table") == HOST_TABLE and " " in rule.get("comment", ""):
            found.add(rule["comment"].split(" ", 1)[1])
    return found


def peer_keys(host: LabHost) -> set[str]:
    """Public keys of the peers on the host's WireGuard interface (empty while it has none)."""
    device = wireguard.open_device(host.wg_interface, host.netns)
    return set() if device is None else {peer.public_key for peer in device.state().peers}


# --- watching for a change --------------------------------------------------------------------


class Probe:
    """Polls ``condition`` every 20 ms in a thread for at most ``timeout`` s; ``seen_at``
    is the first time it held. A failing read (a table being swapped) counts as "not yet"."""

    def __init__(self, condition: Callable[[], bool], timeout: float) -> None:
        self.condition, self.timeout = condition, timeout
        self.seen_at: float | None = None
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._holds():
                self.seen_at = time.time()
                return
            time.sleep(POLL)

    def _holds(self) -> bool:
        try:
            return self.condition()
        except ZtosError:
            return False

    def wait(self) -> float | None:
        """The first time the condition held, or None if it never did in time."""
        self.thread.join(self.timeout + 5)
        return self.seen_at


def seconds_after(start: float, probes: Iterable[Probe]) -> list[float | None]:
    """Each probe's delay after ``start`` (0 when it already held then; None: never)."""
    seen = [probe.wait() for probe in probes]
    return [None if at is None else max(0.0, at - start) for at in seen]


# --- flows between hosts --------------------------------------------------------------------------


class EchoServer:
    """A TCP echo server in a host's namespace on ``ports`` (all addresses)."""

    def __init__(self, host: LabHost, ports: Iterable[int], timeout: float = 10.0) -> None:
        self.ports = list(ports)
        argv = procs.netns_argv([sys.executable, "-c", ECHO_SERVER, *map(str, self.ports)], host.netns)
        self.process = subprocess.Popen(argv)
        deadline = time.monotonic() + timeout
        while not all(procs.listening(self.process.pid, port) for port in self.ports):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise ToolError(f"echo server on {host.name} ports {self.ports} did not listen")
            time.sleep(POLL)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


class Flow:
    """An established TCP flow from ``source`` to ``address:port``; ``cut_at`` says when it was cut."""

    def __init__(self, source: LabHost, address: str, port: int, limit: float = 15.0) -> None:
        argv = [sys.executable, "-c", FLOW_CLIENT, address, str(port), f"{limit:g}"]
        self.process = subprocess.Popen(
            procs.netns_argv(argv, source.netns), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.limit = limit
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()  # bounded: the connect times out after 5 s
        if first != "up":
            self.close()
            raise ToolError(f"no flow {source.name} -> {address}:{port}: {self._stderr() or first}")

    def cut_at(self) -> float | None:
        """When the flow stopped carrying data (``time.time()``); None if it lasted ``limit`` s."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the client ends by itself after ``limit``
        self.close()
        return float(line.split()[1]) if line.startswith("cut") else None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def _stderr(self) -> str:
        self.close()
        assert self.process.stderr is not None
        lines = self.process.stderr.read().strip().splitlines()
        return lines[-1] if lines else ""


def connects(source: LabHost, address: str, port: int) -> bool:
    """One TCP connection attempt (0.7 s) from ``source``."""
    code = f"import socket; socket.create_connection(('{address}', {port}), timeout=0.7)"
    return procs.succeeds([sys.executable, "-c", code], source.netns)
