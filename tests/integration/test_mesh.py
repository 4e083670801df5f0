"""The encrypted mesh end to end (issue: encrypted IPv6 mesh).

One 4-host lab (real namespaces, real wireguard-go, a real controller and one
agent per host started with nothing but its profile) serves every test in
this module, in order: converge and capture, drift repair, agent crash,
controller outage plus a 5th host joining, and finally revocation.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_root_tools
from ztos.lab import checks, commands, procs, runner
from ztos.lab.topology import LabHost, LabTopology

RECONCILE_INTERVAL = 2.0


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "tcpdump", "ping")
    name = "m" + secrets.token_hex(2)
    topology = LabTopology(name, 4)
    try:
        runner.up(topology, reconcile_interval=RECONCILE_INTERVAL)
        checks.wait_converged(name, timeout=60)
        yield topology
    finally:
        runner.down(name)


def netns_run(host: LabHost, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", host.netns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def overlay6(host: LabHost) -> str:
    return str(json.loads(host.enrolment.read_text())["node"]["overlay_ipv6"])


def wg_key(host: LabHost) -> str:
    return str(json.loads(host.enrolment.read_text())["node"]["wg_public_key"])


def peers_of(host: LabHost) -> set[str]:
    return set(netns_run(host, "wg", "show", host.wg_interface, "peers").stdout.split())


def wait_for(condition: object, timeout: float, what: str) -> float:
    """Poll ``condition()`` every 20 ms until true; seconds it took, or fail naming ``what``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    pytest.fail(f"{what} not within {timeout}s")


def read_capture(path: Path, *, complete: bool = False) -> list[str]:
    """The packets in a pcap file, one line each; while tcpdump still writes it, up to its
    last whole packet (``complete``: the file is closed, and any read error fails)."""
    argv = ["tcpdump", "-nn", "-r", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=complete).stdout.splitlines()


def wireguard_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if ".51820" in line and "UDP" in line]


def test_every_pair_pings_and_the_underlay_carries_only_wireguard(lab: LabTopology, tmp_path: Path) -> None:
    report = checks.verify(lab.name)
    assert report.ok, checks.describe_failures(report)
    assert len(report.results) == 4 * 3 * 2
    h1, h2 = lab.hosts[0], lab.hosts[1]
    capture = tmp_path / "underlay.pcap"
    argv = [
        "tcpdump",
        "-Z",
        "root",
        "--immediate-mode",
        "-i",
        h1.bridge_port,
        "-nn",
        "-U",
        "-w",
        str(capture),
    ]
    tcpdump = subprocess.Popen(
        ["ip", "netns", "exec", lab.underlay_netns, *argv], stderr=subprocess.PIPE, text=True
    )
    try:
        assert tcpdump.stderr is not None
        assert "listening on" in tcpdump.stderr.readline(), "tcpdump did not start"
        assert netns_run(h1, "ping", "-c", "5", "-i", "0.1", "-W", "1", overlay6(h2)).returncode == 0
        # tcpdump stops at SIGINT without draining what it has not read yet (CI once lost
        # the last reply that way): stop it once the capture holds the ten packets.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(wireguard_lines(read_capture(capture))) < 10:
            time.sleep(0.05)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    lines = read_capture(capture, complete=True)
    wireguard = wireguard_lines(lines)
    assert len(wireguard) >= 10, "\n".join(lines)
    assert not [line for line in lines if "echo request" in line or "echo reply" in line], lines[:20]
    assert overlay6(h2) not in "\n".join(lines)


def test_drift_is_repaired_and_converged_plan_is_empty(lab: LabTopology) -> None:
    h1, h2 = lab.hosts[0], lab.hosts[1]
    plan = commands.agent_plan_argv(h1)
    areas = ["wireguard", "underlay", "tenants", "gateways", "policy", "routing"]
    assert netns_run(h1, *plan).stdout.splitlines() == [f"{area}: converged" for area in areas]
    netns_run(h1, "wg", "set", h1.wg_interface, "peer", wg_key(h2), "remove")
    assert wg_key(h2) not in peers_of(h1)
    wait_for(lambda: wg_key(h2) in peers_of(h1), RECONCILE_INTERVAL + 5, "the removed peer coming back")
    assert netns_run(h1, "ping", "-c", "1", "-W", "2", overlay6(h2)).returncode == 0
    assert netns_run(h1, *plan).stdout.splitlines() == [f"{area}: converged" for area in areas]


def test_sigkilled_agent_restarts_without_reenrolling_or_disturbing_others(lab: LabTopology) -> None:
    h1, h2, h3 = lab.hosts[0], lab.hosts[1], lab.hosts[2]
    certificate_before = (h1.agent_state / "tls.crt").read_bytes()
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", h2.netns, "ping", "-c", "40", "-i", "0.05", "-W", "1", overlay6(h3)],
        stdout=subprocess.PIPE,
        text=True,
    )
    runner.kill_agent(lab.name, "h1", signal.SIGKILL)
    runner.start_agent(lab.name, "h1")
    output, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in output, output
    assert (h1.agent_state / "tls.crt").read_bytes() == certificate_before
    # the pings ride the data plane the killed agent left; the new agent says so once it is up
    wait_for(lambda: "already enrolled" in h1.agent_log.read_text(), 30, "the restarted agent's start")
    assert netns_run(h1, "ping", "-c", "1", "-W", "2", overlay6(h3)).returncode == 0


def reported_at(lab: LabTopology, host: str) -> str | None:
    view = json.loads(runner.run_admin(lab.name, "monitoring", "metrics", "--json"))
    return next((n["reported_at"] for n in view["nodes"] if n["node"] == host), None)


def test_sigterm_stops_a_waiting_agent_at_once_and_keeps_its_data_plane(lab: LabTopology) -> None:
    """With the production interval an agent waits up to 10 s for changes; SIGTERM must
    not wait that out. Its WireGuard peers stay: stopping is not leaving the mesh."""
    h1, h2 = lab.hosts[0], lab.hosts[1]
    runner.kill_agent(lab.name, "h1")
    before = reported_at(lab, "h1")
    pid = procs.spawn(commands.agent_argv(h1, 30.0), h1.netns, commands.agent_env(), h1.agent_log)
    try:
        wait_for(lambda: reported_at(lab, "h1") != before, 30, "a pass of the long-interval agent")
        stopped = time.monotonic()
        procs.send(pid, signal.SIGTERM)
        assert not procs.wait_gone({pid}, 10), "the agent did not stop on SIGTERM"
        took = time.monotonic() - stopped
        assert took < 2.0, f"SIGTERM took {took:.1f}s (the watch waits up to 30 s)"
    finally:
        procs.stop([pid], signal.SIGKILL)
        runner.start_agent(lab.name, "h1")
    assert netns_run(h1, "ping", "-c", "1", "-W", "2", overlay6(h2)).returncode == 0, "data plane kept"


def test_mesh_survives_controller_outage_and_a_fifth_host_joins(lab: LabTopology) -> None:
    runner.stop_controller(lab.name)
    try:
        report = checks.verify(lab.name)
        assert report.ok, checks.describe_failures(report)
    finally:
        runner.start_controller(lab.name)
    fifth = runner.add_host(lab.name)
    wait_for(fifth.enrolment.exists, 30, "the 5th host's enrolment")
    others = list(lab.hosts)
    wait_for(
        lambda: (
            all(wg_key(fifth) in peers_of(h) for h in others)
            and {wg_key(h) for h in others} <= peers_of(fifth)
        ),
        60,
        "every host (reconnected after the outage) and the 5th having each other as peers",
    )
    for host in others:
        # the first packet may wait for the handshake: a reply to any of three is success
        result = netns_run(host, "ping", "-c", "3", "-i", "0.3", "-W", "2", overlay6(fifth))
        assert result.returncode == 0, f"{host.name}: {result.stdout}"


def test_revoked_host_is_cut_off_everywhere_within_two_seconds(lab: LabTopology) -> None:
    victim, others = lab.hosts[3], lab.hosts[:3]
    key = wg_key(victim)
    runner.run_admin(lab.name, "node", "revoke", victim.name, "--reason", "test")
    revoked_at = time.monotonic()
    wait_for(lambda: all(key not in peers_of(h) for h in others), 2.0, "every peer dropping the revoked host")
    assert time.monotonic() - revoked_at < 2.0
    assert netns_run(victim, "ping", "-c", "2", "-W", "1", overlay6(others[0])).returncode != 0
    wait_for(
        lambda: "certificate_revoked" in victim.agent_log.read_text(),
        15,
        "the API refusing the revoked host's certificate",
    )
