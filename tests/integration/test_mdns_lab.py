"""Local discovery: agents on one underlay link find each other by mDNS (python-zeroconf),
and an announcement the directory does not vouch for is ignored."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import require_root_tools
from ztos.keys import generate_wg_keypair
from ztos.lab import checks, runner
from ztos.lab.topology import LabHost, LabTopology


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go")
    topology = LabTopology("z" + secrets.token_hex(2), 2)
    try:
        runner.up(topology, reconcile_interval=1.0)
        checks.wait_converged(topology.name, timeout=60)
        yield topology
    finally:
        runner.down(topology.name)


def verdicts(host: LabHost) -> dict[str, dict[str, Any]]:
    path = host.agent_state / "mdns.json"
    return {v["node"]: v for v in json.loads(path.read_text())} if path.exists() else {}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout}s")


def test_hosts_on_one_link_find_each_other_and_ignore_forgeries(lab: LabTopology) -> None:
    h1, h2 = lab.hosts
    wait_for(lambda: verdicts(h1).get("h2", {}).get("trusted") is True, 20, "h1 trusting h2's announcement")
    assert verdicts(h1)["h2"]["endpoint"] == f"[{h2.ipv6}]:51820"
    assert verdicts(h2)["h1"]["trusted"] is True

    profile = lab.state_dir / "h9.yaml"
    runner.run_admin(lab.name, "token", "create", "--name", "h9", "--profile-out", str(profile))
    enrolled = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            h2.netns,
            sys.executable,
            "-m",
            "ztos",
            "enroll",
            "--profile",
            str(profile),
            "--state-dir",
            str(lab.state_dir / "h9"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    forger = (
        "import sys, time; from ztos.discovery.mdns import Announcement, LocalDiscovery; "
        "d = LocalDiscovery(); d.announce(Announcement('h9', 51820, sys.argv[1], 'abc123', 'default', "
        "(sys.argv[2],))); time.sleep(30)"
    )
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            h2.netns,
            sys.executable,
            "-c",
            forger,
            generate_wg_keypair().public_key,
            str(h2.ipv6),
        ]
    )
    try:
        wait_for(lambda: "h9" in verdicts(h1), 20, "h1 hearing the forged h9 announcement")
        verdict = verdicts(h1)["h9"]
        assert verdict["trusted"] is False and "key does not match" in verdict["reason"], verdict
        h9_key = json.loads((lab.state_dir / "h9" / "enrolment.json").read_text())["node"]["wg_public_key"]
        endpoints = subprocess.run(
            ["ip", "netns", "exec", h1.netns, "wg", "show", h1.wg_interface, "endpoints"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"{h9_key}\t(none)" in endpoints, "the forged address was not used for the real h9"
    finally:
        process.kill()
        process.wait(timeout=10)
