"""Need-to-know node maps on a real 3-host lab (issue 11).

Tenant corp on h1 and h2, tenant lab on h3 alone, a workload in each. While
no policy is applied the network is open (every host peers with every
other). Once a policy is in force, h1 shares no tenant with h3 and no rule
lets them talk, so h3's endpoint, WireGuard key and attributes appear neither
in h1's node map from the API (fetched with h1's own identity) nor in the map
h1's agent cached on disk, and h1's WireGuard interface has no h3 peer. A rule
between workloads of different tenants has no path and changes nothing; a
rule letting h1 reach h3 brings h3 onto h1, and removing it takes h3 away.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import require_root_tools
from ztos.lab import checks, procs, runner
from ztos.lab.topology import LabHost, LabTopology

SECRET = "zn-h3-secret-value"
CORP_ONLY = """\
version: 1
rules:
  - {name: corp, from: {tenants: [corp]}, to: {tenants: [corp]}, ports: [any]}
"""
ACROSS_TENANTS = (
    CORP_ONLY + "  - {name: across, from: {workloads: [c1]}, to: {workloads: [l3]}, ports: [tcp/80]}\n"
)
H1_TO_H3 = CORP_ONLY + "  - {name: h1-h3, from: {nodes: [h1]}, to: {nodes: [h3]}, ports: [icmp]}\n"
FETCH = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from ztos.client import ApiClient\n"
    "from ztos.enroll.identity_dir import IdentityDir\n"
    "client = ApiClient.for_identity([sys.argv[1]], IdentityDir(Path(sys.argv[2])), timeout=10)\n"
    "print(json.dumps(client.request('GET', '/api/v1/netmap')))\n"
)


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "nft", "ping")
    topology = LabTopology("zn" + secrets.token_hex(1), 3)
    try:
        runner.up(topology, reconcile_interval=2.0)
        checks.wait_converged(topology.name, timeout=90)
        for tenant, hosts in (("corp", ("h1", "h2")), ("lab", ("h3",))):
            admin(topology, "tenant", "create", tenant)
            for host in hosts:
                admin(topology, "tenant", "attach", tenant, "--node", host)
        admin(topology, "workload", "add", "corp", "--node", "h1", "--name", "c1")
        admin(topology, "workload", "add", "lab", "--node", "h3", "--name", "l3")
        admin(topology, "node", "set-attr", "h3", f"admin.note={SECRET}")
        yield topology
    finally:
        runner.down(topology.name)


def admin(lab: LabTopology, *args: str) -> str:
    return runner.run_admin(lab.name, *args)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


def apply(lab: LabTopology, text: str) -> int:
    path = lab.state_dir / "zn-policy.yaml"
    path.write_text(text)
    out = json.loads(admin(lab, "policy", "apply", str(path), "--json"))
    return int(out["rev"])


def api_map(lab: LabTopology, host: LabHost) -> str:
    """h1's node map as the API serves it to h1 (its own client certificate)."""
    argv = [sys.executable, "-c", FETCH, lab.controller_url, str(host.agent_state)]
    return procs.run(argv, lab.underlay_netns, timeout=30)


def cached_map(host: LabHost) -> dict[str, Any]:
    try:
        cached: dict[str, Any] = json.loads((host.agent_state / "netmap.json").read_text())
    except (OSError, ValueError):
        return {}
    return cached


def wg_peers(host: LabHost) -> str:
    return procs.run(["wg", "show", host.wg_interface, "peers"], host.netns, timeout=20)


def h3_clues(lab: LabTopology) -> list[str]:
    """What would give h3 away: its key, underlay and overlay addresses, an attribute, its workload."""
    nodes = {n["name"]: n for n in json.loads(admin(lab, "node", "list", "--json"))}
    h3, host = nodes["h3"], lab.host_named("h3")
    return [
        h3["wg_public_key"],
        str(host.ipv6),
        f"{host.ipv4}:",
        h3["overlay_ipv6"],
        h3["overlay_ipv4"],
        SECRET,
        '"l3"',
    ]


def knows_h3(text: str, clues: list[str]) -> list[str]:
    return [clue for clue in clues if clue in text]


@pytest.mark.timeout(900)  # a 3-host lab on a loaded 2-core machine takes minutes to come up
def test_h1_knows_nothing_of_h3_until_a_rule_lets_them_talk(lab: LabTopology) -> None:
    h1 = lab.host_named("h1")
    clues = h3_clues(lab)
    key = clues[0]
    assert "the network is open" in admin(lab, "policy", "show")
    wait_for(lambda: key in wg_peers(h1), 30, "h3 on h1 while the network is open")

    rev = apply(lab, CORP_ONLY)
    wait_for(lambda: cached_map(h1).get("policy", {}).get("rev") == rev, 30, f"h1 caching rev {rev}")
    wait_for(lambda: key not in wg_peers(h1), 30, "h3's peer gone from h1's WireGuard")
    assert not knows_h3(api_map(lab, h1), clues)
    assert not knows_h3(json.dumps(cached_map(h1)), clues)
    assert [p["name"] for p in cached_map(h1)["peers"]] == ["h2"]

    rev = apply(lab, ACROSS_TENANTS)  # c1 (corp) and l3 (lab) have no path between them
    wait_for(lambda: cached_map(h1).get("policy", {}).get("rev") == rev, 30, f"h1 caching rev {rev}")
    assert not knows_h3(api_map(lab, h1), clues) and key not in wg_peers(h1)

    apply(lab, H1_TO_H3)
    wait_for(lambda: key in wg_peers(h1), 30, "h3 on h1's WireGuard once a rule lets h1 reach h3")
    served = api_map(lab, h1)
    assert "h3" in [p["name"] for p in json.loads(served)["peers"]]
    assert SECRET not in served, "no rule reads h3's attributes"
    assert key in json.dumps(cached_map(h1))

    apply(lab, CORP_ONLY)
    wait_for(lambda: key not in wg_peers(h1), 30, "h3 gone from h1's WireGuard with the rule removed")
    wait_for(lambda: not knows_h3(json.dumps(cached_map(h1)), clues), 30, "h3 gone from h1's cached map")
    assert not knows_h3(api_map(lab, h1), clues)
