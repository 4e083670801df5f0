"""Command lines and environments of the lab's processes, as pure functions.

Why separate: the same argument vectors are built to start a process and
recognised again in ``/proc/PID/cmdline`` to find it (status, restarts,
cleanup after a crash), so building and recognising live side by side and are
unit tested without root. Every process runs the ``ztos`` of the running
interpreter (``python -m ztos``), so a lab started from a virtual environment
uses that environment's ZTOS.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from ztos.lab.topology import DNS_PORT, LabHost, LabTopology

POSTURE_TIMEOUT = 6.0  # the lab's agents report every ~2 s: three missed passes and a margin
MISSED_PASSES = 3  # a slower agent (``--reconcile-interval 10``) is silent that many intervals first
TOKEN_TTL = "1h"  # noqa: S105 - a lifetime, not a secret


def ztos_argv() -> list[str]:
    return [sys.executable, "-m", "ztos"]


def init_argv(topology: LabTopology) -> list[str]:
    urls = [arg for url in topology.controller_urls for arg in ("--controller-url", url)]
    return [*ztos_argv(), "init", "--db", str(topology.controller_db), *urls]


def posture_timeout(reconcile_interval: float) -> float:
    """Silence after which the lab's controllers mark a host non-compliant: agents report
    once a pass, and an idle pass lasts the reconcile interval."""
    return max(POSTURE_TIMEOUT, MISSED_PASSES * reconcile_interval)


def controller_argv(topology: LabTopology, index: int = 1, reconcile_interval: float = 2.0) -> list[str]:
    """Controller ``index``: its own address, every controller's URL for profiles, and
    (controller 1 only) the network's DNS zone."""
    controller = topology.controller(index)
    urls = [arg for url in topology.controller_urls for arg in ("--url", url)]
    dns = ["--dns-listen", f"[{controller.ipv6}]:{DNS_PORT}"] if index == 1 else []
    return [
        *ztos_argv(),
        "controller",
        "serve",
        "--db",
        str(topology.controller_db),
        "--listen",
        controller.listen,
        "--san",
        str(controller.ipv6),
        *urls,
        *dns,
        "--dns-backend",
        topology.dns_backend,
        "--posture-timeout",
        f"{posture_timeout(reconcile_interval):g}",
    ]


def token_argv(host: LabHost) -> list[str]:
    return [
        *ztos_argv(),
        "token",
        "create",
        "--name",
        host.name,
        "--ttl",
        TOKEN_TTL,
        "--profile-out",
        str(host.profile),
    ]


def agent_argv(host: LabHost, reconcile_interval: float) -> list[str]:
    return [
        *ztos_argv(),
        "agent",
        "run",
        "--profile",
        str(host.profile),
        *_agent_options(host, reconcile_interval),
    ]


def agent_plan_argv(host: LabHost) -> list[str]:
    """``ztos agent plan`` for the lab host's agent (run it inside the host's namespace)."""
    return [*ztos_argv(), "agent", "plan", *_agent_options(host)]


def _agent_options(host: LabHost, reconcile_interval: float | None = None) -> list[str]:
    """Where a lab host's agent keeps its state and how it names what it makes."""
    interval = [] if reconcile_interval is None else ["--reconcile-interval", f"{reconcile_interval:g}"]
    return [
        "--state-dir",
        str(host.agent_state),
        "--interface",
        host.wg_interface,
        *interval,
        "--netns-prefix",
        f"{host.netns}-",
        "--frr-instance",
        host.netns,
    ]


def admin_env(topology: LabTopology, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of admin CLI calls: the lab's admin identity and controller.

    With several controllers there is no ``ZTOS_CONTROLLER`` (it names one URL):
    the admin's ``config.yaml`` lists them all, so the CLI fails over like an agent.
    """
    env = _clean(os.environ if base is None else base)
    env["ZTOS_HOME"] = str(topology.admin_home)
    if topology.controller_count == 1:
        env["ZTOS_CONTROLLER"] = topology.controller_url
    return env


def agent_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An agent's environment: no ``ZTOS_*`` at all, so it has only its profile."""
    return _clean(os.environ if base is None else base)


def admin_hint(topology: LabTopology, ztos: list[str], *args: str) -> list[str]:
    """How a person runs an admin command against the lab (printed after ``up``)."""
    return [
        "ip",
        "netns",
        "exec",
        topology.underlay_netns,
        "env",
        f"ZTOS_HOME={topology.admin_home}",
        *([f"ZTOS_CONTROLLER={topology.controller_url}"] if topology.controller_count == 1 else []),
        *ztos,
        *args,
    ]


# --- recognising the lab's processes by their command line ---------------------


def is_controller(argv: list[str], topology: LabTopology, index: int | None = None) -> bool:
    """A controller of the lab (any, or the one listening where controller ``index`` does)."""
    return (
        _is_ztos(argv)
        and _has_sequence(argv, "controller", "serve")
        and _passes(argv, str(topology.controller_db))
        and (index is None or _has_sequence(argv, "--listen", topology.controller(index).listen))
    )


def is_agent(argv: list[str], host: LabHost) -> bool:
    return _is_ztos(argv) and _has_sequence(argv, "agent", "run") and _passes(argv, str(host.agent_state))


def belongs_to_lab(argv: list[str], topology: LabTopology, wg_re: re.Pattern[str]) -> bool:
    """A ZTOS process using the lab's state directory, a wireguard-go for its interfaces,
    or an ``ip netns exec`` into one of its namespaces."""
    if Path(argv[0]).name == "wireguard-go":
        return any(wg_re.fullmatch(arg) for arg in argv[1:])
    if argv[:3] == ["ip", "netns", "exec"] and len(argv) > 3:
        return argv[3].startswith(topology.netns_prefix)  # not yet exec'd into the namespace
    if Path(argv[0]).name == "nsenter" and len(argv) > 1:
        return argv[1].startswith(f"--net=/run/netns/{topology.netns_prefix}")
    root = f"{topology.state_dir}/"
    return _is_ztos(argv) and any(arg.startswith(root) for arg in argv)


def _is_ztos(argv: list[str]) -> bool:
    names = {Path(arg).name for arg in argv[:2]}
    return bool(names & {"ztos", "ztosd"}) or _has_sequence(argv, "-m", "ztos")


def _has_sequence(argv: list[str], first: str, second: str) -> bool:
    return any(a == first and b == second for a, b in itertools.pairwise(argv))


def _passes(argv: list[str], value: str) -> bool:
    return value in argv


def _clean(env: Mapping[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if not k.startswith("ZTOS_")}
    clean["PYTHONUNBUFFERED"] = "1"
    return clean
