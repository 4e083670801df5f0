"""Is the lab working? Status of every part, and all-pairs overlay reachability.

Why ping and not the agents' own reports: the lab exists to show that the
overlay carries traffic, so the verdict is the data plane's, measured from
inside each host's namespace (``ping`` to every other host's overlay IPv6 and
IPv4 address), independent of what any agent believes about itself. Overlay
addresses come from each host's ``enrolment.json``; a host without one is
reported as not enrolled rather than guessed at.

Every wait is bounded: ``verify`` retries each pair a fixed number of times,
``wait_converged`` repeats ``verify`` until a deadline and then says which
pairs still fail.
"""

from __future__ import annotations

import ipaddress
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ztos.errors import Unreachable
from ztos.lab import procs, record, runner
from ztos.lab.topology import LabController, LabHost, LabTopology

PING_ATTEMPTS = 3
RETRY_PAUSE = 0.2
CONVERGE_PAUSE = 0.5
MAX_PARALLEL_PINGS = 16
FAMILIES = (6, 4)


@dataclass(frozen=True)
class PingResult:
    """One ordered pair and address family: did ``source`` reach ``target``?"""

    source: str
    target: str
    family: int
    address: str | None
    ok: bool
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """All ordered pairs of a lab, both families."""

    lab: str
    hosts: tuple[str, ...]
    results: tuple[PingResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failures(self) -> tuple[PingResult, ...]:
        return tuple(result for result in self.results if not result.ok)

    def cell(self, source: str, target: str) -> tuple[PingResult, ...]:
        return tuple(r for r in self.results if r.source == source and r.target == target)


@dataclass(frozen=True)
class HostStatus:
    name: str
    netns: str
    netns_present: bool
    underlay_ipv6: str
    wg_interface: str
    wg_socket: bool
    agent_pids: tuple[int, ...]
    enrolled: bool
    overlay_ipv6: str | None
    overlay_ipv4: str | None
    agent_log: str


@dataclass(frozen=True)
class ControllerStatus:
    index: int
    url: str
    pids: tuple[int, ...]
    listening: bool
    log: str


@dataclass(frozen=True)
class LabStatus:
    name: str
    node_count: int
    underlay_mtu: int
    underlay_netns: str
    controller_url: str  # controller 1's
    controller_pids: tuple[int, ...]  # every controller's
    controller_listening: bool  # every controller listens
    state_dir: str
    hosts: tuple[HostStatus, ...]
    controllers: tuple[ControllerStatus, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.controller_listening and all(h.agent_pids and h.enrolled for h in self.hosts)


# --- status ------------------------------------------------------------------------------


def status(lab: str) -> LabStatus:
    """Where every part of a running lab stands (controller, agents, enrolment)."""
    topology = record.load(lab).topology
    controllers = tuple(_controller_status(topology, c) for c in topology.controllers)
    return LabStatus(
        name=topology.name,
        node_count=topology.node_count,
        underlay_mtu=topology.underlay_mtu,
        underlay_netns=topology.underlay_netns,
        controller_url=topology.controller_url,
        controller_pids=tuple(sorted(pid for c in controllers for pid in c.pids)),
        controller_listening=all(c.listening for c in controllers),
        state_dir=str(topology.state_dir),
        hosts=tuple(_host_status(topology, host) for host in topology.hosts),
        controllers=controllers,
    )


def _controller_status(topology: LabTopology, controller: LabController) -> ControllerStatus:
    pids = tuple(sorted(runner.controller_pids(topology, controller.index)))
    return ControllerStatus(
        index=controller.index,
        url=controller.url,
        pids=pids,
        listening=any(procs.listening(p, controller.port, controller.ipv6) for p in pids),
        log=str(controller.log),
    )


def _host_status(topology: LabTopology, host: LabHost) -> HostStatus:
    ipv6, ipv4 = overlay_addresses(host)
    return HostStatus(
        name=host.name,
        netns=host.netns,
        netns_present=procs.netns_inode(host.netns) is not None,
        underlay_ipv6=str(host.ipv6),
        wg_interface=host.wg_interface,
        wg_socket=topology.wg_socket(host).exists(),
        agent_pids=tuple(sorted(runner.agent_pids(host))),
        enrolled=host.enrolment.exists(),
        overlay_ipv6=ipv6,
        overlay_ipv4=ipv4,
        agent_log=str(host.agent_log),
    )


def overlay_addresses(host: LabHost) -> tuple[str | None, str | None]:
    """(IPv6, IPv4) overlay addresses from the host's ``enrolment.json``, None if absent."""
    try:
        node = json.loads(host.enrolment.read_text()).get("node") or {}
    except (OSError, ValueError, AttributeError):
        return None, None
    return _address(node.get("overlay_ipv6")), _address(node.get("overlay_ipv4"))


def _address(value: object) -> str | None:
    try:
        return str(ipaddress.ip_interface(str(value)).ip) if value else None
    except ValueError:
        return None


# --- reachability ---------------------------------------------------------------------------


def verify(lab: str, attempts: int = PING_ATTEMPTS) -> VerifyReport:
    """Ping every other host's overlay addresses from inside each host's namespace."""
    topology = record.load(lab).topology
    hosts = topology.hosts
    addresses = {host.name: overlay_addresses(host) for host in hosts}
    jobs = [(s, t, f) for s in hosts for t in hosts if s != t for f in FAMILIES]

    def ping(job: tuple[LabHost, LabHost, int]) -> PingResult:
        source, target, family = job
        return _ping(source, target, family, addresses[target.name], attempts)

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_PINGS, len(jobs)))) as pool:
        results = tuple(pool.map(ping, jobs))
    return VerifyReport(topology.name, tuple(h.name for h in hosts), results)


def verify_until(lab: str, timeout: float) -> VerifyReport:
    """Repeat a quick ``verify`` until every pair answers or ``timeout`` passes; the last report."""
    deadline = time.monotonic() + timeout
    report = verify(lab, attempts=1)
    while not report.ok and time.monotonic() < deadline:
        time.sleep(CONVERGE_PAUSE)
        report = verify(lab, attempts=1)
    return report


def wait_converged(lab: str, timeout: float = 60.0) -> VerifyReport:
    """Wait until every pair answers; ``Unreachable`` naming the failing pairs at the deadline."""
    report = verify_until(lab, timeout)
    if not report.ok:
        raise Unreachable(
            f"lab {lab!r} did not converge within {timeout:g}s: {describe_failures(report)}; "
            f"agent logs: {record.load(lab).topology.state_dir}/hosts/*/agent.log"
        )
    return report


def describe_failures(report: VerifyReport, limit: int = 4) -> str:
    """The first few failing pairs on one line."""
    failures = report.failures
    shown = [f"{r.source}->{r.target} IPv{r.family} ({r.error or r.address})" for r in failures[:limit]]
    more = f" and {len(failures) - limit} more" if len(failures) > limit else ""
    return ", ".join(shown) + more if failures else "none"


def _ping(
    source: LabHost,
    target: LabHost,
    family: int,
    addresses: tuple[str | None, str | None],
    attempts: int,
) -> PingResult:
    address = addresses[0] if family == 6 else addresses[1]
    if address is None:
        error = f"{target.name} not enrolled (no {target.enrolment.name})"
        return PingResult(source.name, target.name, family, None, False, 0, error)
    for attempt in range(1, attempts + 1):
        if procs.succeeds(["ping", "-c", "1", "-W", "1", address], source.netns):
            return PingResult(source.name, target.name, family, address, True, attempt)
        if attempt < attempts:
            time.sleep(RETRY_PAUSE)
    return PingResult(source.name, target.name, family, address, False, attempts, "no reply")
