"""Build, grow and tear down a lab: the side-effecting half of ``ztos.lab``.

``up`` turns a ``LabTopology`` into namespaces, a bridge, veths, its
controllers (replicas over one directory) and one agent per host; ``down``
removes everything the naming scheme says could belong to the lab, whether
or not ``up`` finished or ``lab.json`` survived. Netlink work goes through
``ztos.dataplane.links`` and processes through ``ztos.lab.procs``, so this
module only sequences them.

A failed ``up`` (or ``add_host``) is rolled back at once: a half-built lab is
never left running. Its logs stay in the state directory for the post-mortem
until the next ``up`` or ``down`` of that name.
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ztos.dataplane import links
from ztos.errors import Conflict, ToolError, ZtosError
from ztos.lab import commands, procs, record
from ztos.lab.record import LabRecord
from ztos.lab.topology import (
    WG_SOCKET_DIR,
    LabController,
    LabHost,
    LabTopology,
    check_lab_name,
    netns_prefix,
    state_dir,
    wg_interface_re,
)
from ztos.routing import frr
from ztos.routing.spec import CONFIG_ROOT

CONTROLLER_TIMEOUT = 30.0
DEFAULT_RECONCILE_INTERVAL = 2.0
STOP_TIMEOUT = 5.0
STOP_ROUNDS = 5
POLL_INTERVAL = 0.05
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)


@dataclass(frozen=True)
class Teardown:
    """What ``down`` found and removed."""

    name: str
    processes: tuple[int, ...]
    namespaces: tuple[str, ...]
    sockets: tuple[str, ...]
    state_dir_removed: bool


# --- the lab as a whole -------------------------------------------------------------


def up(
    topology: LabTopology,
    *,
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
    rollback: bool = True,
) -> LabRecord:
    """Build the lab and start its controller and agents; roll back on any failure."""
    _refuse_existing(topology.name)
    _fresh_state_dir(topology)
    try:
        return _build(topology, reconcile_interval)
    except BaseException as exc:
        if not rollback:
            raise
        down(topology.name, keep_logs=True)
        if isinstance(exc, ZtosError):
            raise _rolled_back(exc, topology) from exc
        raise


def _rolled_back(exc: ZtosError, topology: LabTopology) -> ZtosError:
    """The same error, saying that the lab was removed and where its logs are."""
    detail = f"lab up failed: {exc.detail}; rolled back, logs kept in {topology.state_dir}"
    return type(exc)(detail, code=exc.code)


def down(lab: str, *, keep_logs: bool = False) -> Teardown:
    """Stop every lab process, delete its namespaces, sockets and state (crash-safe).

    Everything is found from the lab name alone (``topology``'s naming scheme):
    processes in the lab's namespaces or passing its paths/interface names,
    namespaces by prefix, UAPI sockets by interface name.
    """
    check_lab_name(lab)
    stopped = _stop_lab_processes(lab)
    namespaces = _lab_namespaces(lab)
    for name in namespaces:
        links.delete_netns(name)
    stopped |= _stop_lab_processes(lab)
    sockets = _remove_sockets(lab)
    removed = _remove_state(lab, keep_logs)
    return Teardown(lab, tuple(sorted(stopped)), namespaces, sockets, removed)


def add_host(lab: str) -> LabHost:
    """Add one host to a running lab: namespace, veth, token, agent."""
    current = record.load(lab)
    grown = current.topology.with_node_count(current.node_count + 1)
    host = grown.host(grown.node_count)
    try:
        pid = _bring_up_host(grown, host, current.reconcile_interval)
    except BaseException:
        _remove_host(grown, host)
        raise
    record.save(replace(current, node_count=grown.node_count).with_agent(host.name, pid))
    return host


# --- controller and agents (also test helpers) ---------------------------------------------


def start_controller(lab: str, index: int = 1) -> int:
    """Start the lab's controller ``index`` unless it runs; its pid once it listens."""
    current = record.load(lab)
    topology = current.topology
    running = controller_pids(topology, index)
    pid = min(running) if running else _spawn_controller(topology, index, current.reconcile_interval)
    record.save(current.with_controller(index, pid))
    return pid


def stop_controller(lab: str, index: int | None = None) -> tuple[int, ...]:
    """Stop the lab's controllers, or only controller ``index`` (agents keep running); the pids stopped."""
    current = record.load(lab)
    stopped = procs.stop(controller_pids(current.topology, index), timeout=STOP_TIMEOUT)
    indexes = [c.index for c in current.topology.controllers] if index is None else [index]
    for each in indexes:
        current = current.with_controller(each, None)
    record.save(current)
    return tuple(sorted(stopped))


def kill_controller(lab: str, index: int, sig: int = signal.SIGKILL) -> tuple[int, ...]:
    """Signal controller ``index`` (by default ``kill -9``: a replica dying mid-request)
    and wait until it is gone; the pids signalled."""
    current = record.load(lab)
    pids = controller_pids(current.topology, index)
    for pid in pids:
        procs.send(pid, sig)
    if procs.wait_gone(pids, STOP_TIMEOUT):
        raise ToolError(f"controller {index} of lab {lab!r} did not exit after signal {sig}")
    record.save(current.with_controller(index, None))
    return tuple(sorted(pids))


def start_agent(lab: str, host_name: str) -> int:
    """Start a host's agent unless it runs; its pid."""
    current = record.load(lab)
    host = current.topology.host_named(host_name)
    running = agent_pids(host)
    pid = min(running) if running else _spawn_agent(host, current.reconcile_interval)
    record.save(current.with_agent(host.name, pid))
    return pid


def kill_agent(lab: str, host_name: str, sig: int = signal.SIGTERM) -> tuple[int, ...]:
    """Signal a host's agent; for TERM/INT/KILL also wait until it is gone.

    Its wireguard-go runs in its own session and survives, as it would when a
    real agent crashes: that is what tests of agent restarts want.
    """
    current = record.load(lab)
    host = current.topology.host_named(host_name)
    pids = agent_pids(host)
    for pid in pids:
        procs.send(pid, sig)
    if sig not in ENDING_SIGNALS:
        return tuple(sorted(pids))
    if procs.wait_gone(pids, STOP_TIMEOUT):
        raise ToolError(f"agent of {host.name} in lab {lab!r} did not exit after signal {sig}")
    record.save(current.with_agent(host.name, None))
    return tuple(sorted(pids))


def controller_pids(topology: LabTopology, index: int | None = None) -> set[int]:
    """Pids of the lab's controllers, or of controller ``index`` only."""
    return procs.pids_matching(lambda argv: commands.is_controller(argv, topology, index))


def agent_pids(host: LabHost) -> set[int]:
    return procs.pids_matching(lambda argv: commands.is_agent(argv, host))


def run_admin(lab: str, *args: str, timeout: float = 60.0) -> str:
    """Run ``ztos ARGS`` as the lab's admin inside the underlay namespace; its stdout."""
    topology = record.load(lab).topology
    return procs.run(
        [*commands.ztos_argv(), *args],
        topology.underlay_netns,
        commands.admin_env(topology),
        timeout,
    )


# --- building ------------------------------------------------------------------------


def _build(topology: LabTopology, reconcile_interval: float) -> LabRecord:
    _build_underlay(topology)
    for host in topology.hosts:
        _build_host(topology, host)
    procs.run(commands.init_argv(topology), env=commands.admin_env(topology))
    current = LabRecord(
        topology.name,
        topology.node_count,
        topology.underlay_mtu,
        reconcile_interval,
        topology.dns_backend,
        topology.controller_count,
    )
    record.save(current)
    for controller in topology.controllers:
        pid = _spawn_controller(topology, controller.index, reconcile_interval)
        current = current.with_controller(controller.index, pid)
        record.save(current)
    for host in topology.hosts:
        _create_profile(topology, host)
    for host in topology.hosts:
        current = current.with_agent(host.name, _spawn_agent(host, reconcile_interval))
        record.save(current)
    return current


def _build_underlay(topology: LabTopology) -> None:
    netns = topology.underlay_netns
    _create_quiet_netns(netns)
    links.create_bridge(topology.bridge, netns, up=False)
    links.set_link(topology.bridge, netns, mtu=topology.underlay_mtu, up=True)
    for controller in topology.controllers:
        links.add_address(topology.bridge, f"{controller.ipv6}/64", netns)
        links.add_address(topology.bridge, f"{controller.ipv4}/24", netns)


def _build_host(topology: LabTopology, host: LabHost) -> None:
    ul = topology.underlay_netns
    _create_quiet_netns(host.netns)
    links.create_veth(
        host.underlay_link, host.bridge_port, netns=host.netns, peer_netns=ul, mtu=topology.underlay_mtu
    )
    links.set_master(host.bridge_port, topology.bridge, ul)
    links.set_link(host.bridge_port, ul, up=True)
    links.add_address(host.underlay_link, f"{host.ipv6}/64", host.netns)
    links.add_address(host.underlay_link, f"{host.ipv4}/24", host.netns)
    links.set_link(host.underlay_link, host.netns, up=True)


def _create_quiet_netns(netns: str) -> None:
    """A namespace with ``lo`` up, no DAD (addresses usable at once) and no SLAAC from RAs."""
    links.create_netns(netns)
    for scope in ("all", "default"):
        links.set_sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0, netns)
        links.set_sysctl(f"net.ipv6.conf.{scope}.accept_ra", 0, netns)


def _bring_up_host(topology: LabTopology, host: LabHost, reconcile_interval: float) -> int:
    _build_host(topology, host)
    _create_profile(topology, host)
    return _spawn_agent(host, reconcile_interval)


def _create_profile(topology: LabTopology, host: LabHost) -> None:
    host.dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its profile carries a token
    procs.run(commands.token_argv(host), topology.underlay_netns, commands.admin_env(topology))


def _spawn_controller(topology: LabTopology, index: int, reconcile_interval: float) -> int:
    controller = topology.controller(index)
    argv = commands.controller_argv(topology, index, reconcile_interval)
    pid = procs.spawn(argv, topology.underlay_netns, commands.admin_env(topology), controller.log)
    _wait_listening(controller, pid)
    return pid


def _wait_listening(controller: LabController, pid: int) -> None:
    deadline = time.monotonic() + CONTROLLER_TIMEOUT
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise ToolError(f"controller {controller.index} exited: {_last_log_line(controller.log)}")
        if procs.listening(pid, controller.port, controller.ipv6):
            return
        time.sleep(POLL_INTERVAL)
    raise ToolError(f"controller did not listen on {controller.listen} within {CONTROLLER_TIMEOUT:g}s")


def _spawn_agent(host: LabHost, reconcile_interval: float) -> int:
    argv = commands.agent_argv(host, reconcile_interval)
    return procs.spawn(argv, host.netns, commands.agent_env(), host.agent_log)


def _last_log_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    last = [line for line in lines if line.strip()]
    return last[-1].strip() if last else f"empty log {log}"


# --- tearing down ------------------------------------------------------------------------


def _refuse_existing(lab: str) -> None:
    if record.exists(lab) or _lab_namespaces(lab):
        raise Conflict(f"lab {lab!r} is already up or left over: run 'ztos lab down --name {lab}' first")


def _fresh_state_dir(topology: LabTopology) -> None:
    """An empty state directory, owner-only: it holds the lab admin's private key."""
    shutil.rmtree(topology.state_dir, ignore_errors=True)
    topology.state_dir.mkdir(parents=True, mode=0o700)


def _lab_namespaces(lab: str) -> tuple[str, ...]:
    prefix = netns_prefix(lab)
    return tuple(name for name in links.list_netns() if name.startswith(prefix))


def _stop_lab_processes(lab: str) -> set[int]:
    """Stop the lab's processes, rescanning until none is left (bounded).

    One pass is not enough: an agent caught between the scan and its SIGTERM
    may still start a wireguard-go, so the next pass picks that one up.
    """
    stopped: set[int] = set()
    for _ in range(STOP_ROUNDS):
        found = procs.stop(_lab_pids(lab), timeout=STOP_TIMEOUT)
        if not found:
            return stopped
        stopped |= found
    left = {pid for pid in _lab_pids(lab) if procs.alive(pid)}
    if left:
        raise ToolError(f"lab {lab!r}: processes {sorted(left)} keep appearing; stop them and run down again")
    return stopped


def _lab_pids(lab: str) -> set[int]:
    topology = LabTopology(lab, 1)
    wg_re = wg_interface_re(lab)
    owned = procs.pids_matching(lambda argv: commands.belongs_to_lab(argv, topology, wg_re))
    return owned | procs.pids_in_netns(_lab_namespaces(lab))


def _remove_sockets(lab: str) -> tuple[str, ...]:
    """WireGuard UAPI sockets and FRR socket directories (instances are named after host namespaces)."""
    wg_re = wg_interface_re(lab)
    sockets = WG_SOCKET_DIR.glob(f"zt{lab}h*.sock")
    found = [p for p in sockets if wg_re.fullmatch(p.name.removesuffix(".sock"))]
    for path in found:
        path.unlink(missing_ok=True)
    frr_dirs = [
        p for root in (frr.RUN_ROOT, CONFIG_ROOT) for p in root.glob(f"{netns_prefix(lab)}h*") if p.is_dir()
    ]
    for path in frr_dirs:
        shutil.rmtree(path, ignore_errors=True)
    return tuple(sorted(str(p) for p in [*found, *frr_dirs]))


def _remove_state(lab: str, keep_logs: bool) -> bool:
    if keep_logs:
        record.remove(lab)
        return False
    root = state_dir(lab)
    existed = root.exists()
    shutil.rmtree(root, ignore_errors=True)
    return existed and not root.exists()


def _remove_host(topology: LabTopology, host: LabHost) -> None:
    """Undo a half-added host: its processes, namespace, socket and files."""
    procs.stop(procs.pids_in_netns([host.netns]) | agent_pids(host), timeout=STOP_TIMEOUT)
    links.delete_netns(host.netns)
    topology.wg_socket(host).unlink(missing_ok=True)
    shutil.rmtree(host.dir, ignore_errors=True)
