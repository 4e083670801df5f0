"""A multi-host ZTOS on one machine, in network namespaces (``ztos lab``).

Why: every feature of ZTOS is about several hosts talking through an overlay;
the lab gives a developer, the demo and the integration tests real hosts
(namespaces with their own underlay link, controller process, agents and
wireguard-go) without virtual machines.

Layout: ``topology`` describes a lab purely (names, addresses, paths; the
naming scheme cleanup relies on is documented there), ``runner`` builds and
removes it, ``checks`` reports status and all-pairs reachability, ``procs``
is the adapter for processes and ``/proc``, ``record`` keeps ``lab.json``.
"""

from __future__ import annotations

from ztos.lab.checks import (
    ControllerStatus,
    HostStatus,
    LabStatus,
    PingResult,
    VerifyReport,
    describe_failures,
    overlay_addresses,
    status,
    verify,
    verify_until,
    wait_converged,
)
from ztos.lab.record import LabRecord, load
from ztos.lab.runner import (
    Teardown,
    add_host,
    agent_pids,
    controller_pids,
    down,
    kill_agent,
    kill_controller,
    run_admin,
    start_agent,
    start_controller,
    stop_controller,
    up,
)
from ztos.lab.topology import DEFAULT_LAB, DEFAULT_MTU, LabController, LabHost, LabTopology

__all__ = [
    "DEFAULT_LAB",
    "DEFAULT_MTU",
    "ControllerStatus",
    "HostStatus",
    "LabController",
    "LabHost",
    "LabRecord",
    "LabStatus",
    "LabTopology",
    "PingResult",
    "Teardown",
    "VerifyReport",
    "add_host",
    "agent_pids",
    "controller_pids",
    "describe_failures",
    "down",
    "kill_agent",
    "kill_controller",
    "load",
    "overlay_addresses",
    "run_admin",
    "start_agent",
    "start_controller",
    "status",
    "stop_controller",
    "up",
    "verify",
    "verify_until",
    "wait_converged",
]
