"""``ztos lab``: bring up, check and remove a multi-host ZTOS in network namespaces.

A thin front end over ``ztos.lab``: it validates options, calls the library,
and prints what a person needs next (how to reach the lab's controller, how to
tear the lab down). Every failure is one line on stderr and a non-zero exit;
``verify`` exits 1 when any pair of hosts cannot reach each other.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ztos import lab
from ztos.cli.context import fail, print_json, print_table
from ztos.errors import ZtosError
from ztos.lab import commands
from ztos.lab.checks import HostStatus, LabStatus, PingResult, VerifyReport

lab_app = typer.Typer(
    help="A multi-host ZTOS on this machine, in network namespaces (needs root).",
    no_args_is_help=True,
)

NameOption = Annotated[
    str,
    typer.Option("--name", help="Lab name: 1-6 of a-z and 0-9, starting with a letter."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@lab_app.command("up")
def up(
    nodes: Annotated[int, typer.Option("--nodes", help="Number of hosts (1-200).")],
    underlay_mtu: Annotated[
        int, typer.Option("--underlay-mtu", help="MTU of the underlay bridge and links.")
    ] = lab.DEFAULT_MTU,
    name: NameOption = lab.DEFAULT_LAB,
    wait: Annotated[
        float, typer.Option("--wait", help="Then wait up to SECONDS for all pairs to reach each other.")
    ] = 0.0,
    reconcile_interval: Annotated[
        float, typer.Option("--reconcile-interval", help="Agents' reconcile interval in seconds.")
    ] = 2.0,
    dns: Annotated[
        str, typer.Option("--dns", help="The controller's DNS server: embedded or bind.")
    ] = "embedded",
    controllers: Annotated[
        int,
        typer.Option(
            "--controllers",
            help="Controller replicas over the one directory (1-9), at underlay ::1, ::2, …; "
            "every host's profile lists all their URLs and fails over between them. "
            "Only controller 1 serves DNS.",
        ),
    ] = 1,
) -> None:
    """Create the namespaces and underlay, start the controller(s) and one agent per host."""
    with _one_line_errors():
        topology = lab.LabTopology(name, nodes, underlay_mtu, dns, controllers)
        lab.up(topology, reconcile_interval=reconcile_interval)
        replicas = f", {controllers} controllers" if controllers > 1 else ""
        print(f"lab {name!r} up: {nodes} host(s){replicas} on {topology.ipv6_prefix}, MTU {underlay_mtu}")
        _print_next_steps(topology)
        if wait > 0:
            lab.wait_converged(name, wait)
            print(f"all {nodes} host(s) reach each other over the overlay")


@lab_app.command("verify")
def verify(
    name: NameOption = lab.DEFAULT_LAB,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Keep trying for up to SECONDS before reporting.")
    ] = 30.0,
    json_out: JsonFlag = False,
) -> None:
    """Ping every host's overlay IPv6 and IPv4 address from every other host."""
    with _one_line_errors():
        report = lab.verify_until(name, timeout)
        if report.failures:
            report = lab.verify(name)  # the last word gets full retries
    if json_out:
        print_json({"lab": report.lab, "ok": report.ok, "pairs": [asdict(r) for r in report.results]})
    else:
        _print_matrix(report)
    if not report.ok:
        total = len(report.results)
        fail(f"{len(report.failures)} of {total} checks failed: {lab.describe_failures(report)}")


@lab_app.command("status")
def status(name: NameOption = lab.DEFAULT_LAB, json_out: JsonFlag = False) -> None:
    """Show the controller, every host's agent, enrolment and addresses."""
    with _one_line_errors():
        current = lab.status(name)
    if json_out:
        print_json({**asdict(current), "healthy": current.healthy})
        return
    _print_status(current)


@lab_app.command("add-host")
def add_host(name: NameOption = lab.DEFAULT_LAB) -> None:
    """Add one host to a running lab (namespace, underlay link, token, agent)."""
    with _one_line_errors():
        host = lab.add_host(name)
    print(f"host {host.name} added to lab {name!r}: netns {host.netns}, underlay {host.ipv6}")
    print(f"  agent log: {host.agent_log}")
    print(f"  check it:  ztos lab verify --name {name}")


@lab_app.command("down")
def down(name: NameOption = lab.DEFAULT_LAB) -> None:
    """Stop the lab's processes and delete its namespaces, sockets and state (works after a crash)."""
    with _one_line_errors():
        removed = lab.down(name)
    if not (removed.processes or removed.namespaces or removed.sockets or removed.state_dir_removed):
        print(f"lab {name!r}: nothing to remove")
        return
    print(
        f"lab {name!r} down: stopped {len(removed.processes)} process(es), "
        f"deleted {len(removed.namespaces)} namespace(s) and {len(removed.sockets)} socket(s)"
    )


# --- helpers -------------------------------------------------------------------------


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Refuse without root; turn ZTOS errors into one line on stderr."""
    if os.geteuid() != 0:
        fail("ztos lab needs root (network namespaces): run it as root or with sudo")
    try:
        yield
    except ZtosError as exc:
        fail(f"{exc.detail} [{exc.code}]", 1 if not exc.retry else 4)


def _ztos_command() -> list[str]:
    script = Path(sys.executable).parent / "ztos"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ztos"]


def _print_next_steps(topology: lab.LabTopology) -> None:
    admin = commands.admin_hint(topology, _ztos_command(), "node", "list")
    first = topology.hosts[0]
    print("reach the controller as the lab's admin:")
    print(f"  {shlex.join(admin)}")
    print(f"a shell on {first.name}:  ip netns exec {first.netns} bash")
    print(f"check the overlay:  ztos lab verify --name {topology.name}")
    print(f"tear it down:       ztos lab down --name {topology.name}")


def _print_matrix(report: VerifyReport) -> None:
    rows = [[source, *(_cell(report, source, target) for target in report.hosts)] for source in report.hosts]
    print(f"lab {report.lab}: overlay ping from each row's host to each column's host")
    print_table("", ["from \\ to", *report.hosts], rows)
    passed = len(report.results) - len(report.failures)
    print(f"{passed}/{len(report.results)} checks passed (IPv6 and IPv4 per ordered pair)")


def _cell(report: VerifyReport, source: str, target: str) -> str:
    if source == target:
        return "-"
    results = report.cell(source, target)
    if all(r.ok for r in results):
        return "ok"
    if all(r.address is None for r in results):
        return "not enrolled"
    return " ".join(_family_result(r) for r in results)


def _family_result(result: PingResult) -> str:
    return f"v{result.family}:{'ok' if result.ok else 'FAIL'}"


def _print_status(current: LabStatus) -> None:
    print(f"lab {current.name}: {current.node_count} host(s), underlay MTU {current.underlay_mtu}")
    for each in current.controllers:
        pids = ", ".join(map(str, each.pids)) or "not running"
        listening = "listening" if each.listening else "not listening"
        name = "controller" if len(current.controllers) == 1 else f"controller {each.index}"
        print(f"{name} {each.url} in {current.underlay_netns}: pid {pids}, {listening}")
    header = ["host", "netns", "underlay", "wireguard", "agent", "enrolled", "overlay IPv6", "IPv4"]
    _print_columns([header, *(_status_row(h) for h in current.hosts)])
    print(f"state and logs: {current.state_dir}")


def _status_row(host: HostStatus) -> list[str]:
    return [
        host.name,
        host.netns if host.netns_present else f"{host.netns} (missing)",
        host.underlay_ipv6,
        host.wg_interface if host.wg_socket else f"{host.wg_interface} (no socket)",
        ",".join(map(str, host.agent_pids)) or "stopped",
        "yes" if host.enrolled else "no",
        host.overlay_ipv6 or "-",
        host.overlay_ipv4 or "-",
    ]


def _print_columns(rows: list[list[str]]) -> None:
    """Plain aligned columns: status lines are long and often read from logs, not a terminal."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
