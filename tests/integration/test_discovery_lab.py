"""Service discovery in a real 4-host lab, against the embedded server and BIND 9.

Agents publish their own records with their own TSIG keys; every host resolves
every other host's name and ``_wireguard._udp`` SRV through the authoritative
server; a host enrols with a profile that names only the DNS domain; a revoked
host's records vanish within 2 s and its key stops working.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import require_root_tools
from ztos.lab import checks, runner
from ztos.lab.topology import LabHost, LabTopology

ZONE = "default.ztos.internal"


@pytest.fixture(scope="module", params=["embedded", "bind"])
def lab(request: pytest.FixtureRequest) -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "dig", "named")
    topology = LabTopology("d" + secrets.token_hex(2), 4, dns_backend=request.param)
    try:
        runner.up(topology, reconcile_interval=2.0)
        checks.wait_converged(topology.name, timeout=60)
        yield topology
    finally:
        runner.down(topology.name)


def dig(lab: LabTopology, host: LabHost, name: str, rdtype: str) -> list[str]:
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            host.netns,
            "dig",
            "+short",
            "+time=1",
            "+tries=2",
            f"@{lab.controller_ipv6}",
            name,
            rdtype,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return (
        result.stdout.split()
        if rdtype != "SRV"
        else [" ".join(line.split()) for line in result.stdout.splitlines() if line]
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"{what} not within {timeout}s")


def node(host: LabHost) -> dict[str, str]:
    return dict(json.loads(host.enrolment.read_text())["node"])


def test_every_host_resolves_every_other(lab: LabTopology) -> None:
    def all_published() -> bool:
        return all(dig(lab, lab.hosts[0], f"{h.name}.{ZONE}", "AAAA") for h in lab.hosts)

    wait_for(all_published, 20, "every host's records")
    for source in lab.hosts:
        for target in lab.hosts:
            if source == target:
                continue
            assert dig(lab, source, f"{target.name}.{ZONE}", "AAAA") == [node(target)["overlay_ipv6"]]
            assert dig(lab, source, f"{target.name}.{ZONE}", "A") == [node(target)["overlay_ipv4"]]
            srv = dig(lab, source, f"_wireguard._udp.{target.name}.{ZONE}", "SRV")
            assert srv == [f"0 0 51820 {target.name}.{ZONE}."], srv
    browse = dig(lab, lab.hosts[0], f"_wireguard._udp.{ZONE}", "PTR")
    assert sorted(browse) == sorted(f"_wireguard._udp.{h.name}.{ZONE}." for h in lab.hosts)


def test_profile_with_only_a_domain_finds_the_controller(lab: LabTopology, tmp_path: Path) -> None:
    profile = lab.state_dir / "by-dns.yaml"
    runner.run_admin(
        lab.name, "token", "create", "--name", "h9", "--discover-by-dns", "--profile-out", str(profile)
    )
    data = yaml.safe_load(profile.read_text())
    assert data["controllers"] == [] and data["domain"] == f"{ZONE}."
    state = lab.state_dir / "h9-state"
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab.hosts[0].netns,
            sys.executable,
            "-m",
            "ztos",
            "enroll",
            "--profile",
            str(profile),
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "enrolled as 'h9'" in result.stdout


def test_revoked_host_disappears_and_its_key_stops_working(lab: LabTopology) -> None:
    victim, observer = lab.hosts[3], lab.hosts[0]
    assert dig(lab, observer, f"{victim.name}.{ZONE}", "AAAA")
    runner.run_admin(lab.name, "node", "revoke", victim.name)
    took = wait_for(
        lambda: (
            not dig(lab, observer, f"{victim.name}.{ZONE}", "AAAA")
            and not dig(lab, observer, f"_wireguard._udp.{victim.name}.{ZONE}", "SRV")
        ),
        2.0,
        "the revoked host's records gone",
    )
    assert took < 2.0
    attempt = (
        "from ztos.discovery import DnsUpdater; from ztos.enroll.identity_dir import IdentityDir; "
        "from pathlib import Path; import sys; c = IdentityDir(Path(sys.argv[1])).dns_credentials(); "
        "u = DnsUpdater(c.server, c.port, c.zone, c.key_name, c.secret); "
        "u.replace_host(sys.argv[2], 'fd00::1', None)"
    )
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            victim.netns,
            sys.executable,
            "-c",
            attempt,
            str(victim.agent_state),
            victim.name,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0 and (
        "NOTAUTH" in result.stderr or "BADKEY" in result.stderr or "REFUSED" in result.stderr
    ), result.stderr
    assert not dig(lab, observer, f"{victim.name}.{ZONE}", "AAAA"), "the refused update changed nothing"
