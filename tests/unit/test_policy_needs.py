"""Need to know (``ztos.policy.needs``): each host gets the peers and identities its own
enforcement reads, and compiles the same verdicts for its traffic as with the whole
directory."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from golden_policy import NOW, POLICY, SNAPSHOT
from ztos.policy import (
    KnownNames,
    NodeInfo,
    Snapshot,
    TenantPorts,
    UserInfo,
    WorkloadInfo,
    compile_host,
    compile_tenant,
    load_policy,
)
from ztos.policy.needs import Reach


def test_a_host_no_rule_touches_gets_no_policy_peer_and_no_one_elses_identities() -> None:
    snapshot = SNAPSHOT.with_node(NodeInfo("h3", ("fd00:ffff::3", "10.99.0.3"), attributes={"secret": "x"}))
    needs = Reach(POLICY, snapshot).needs("h3")
    assert needs.policy_peers == frozenset()
    assert set(needs.snapshot.nodes) == {"h3"}
    assert dict(needs.snapshot.nodes["h3"].attributes) == {}  # no rule reads h3's attributes
    assert not needs.snapshot.workloads and not needs.snapshot.users


def test_peers_follow_the_rules_both_ways() -> None:
    policy = load_policy(
        "version: 1\nrules:\n  - {name: ssh, from: {nodes: [h1]}, to: {nodes: [h3]}, ports: [tcp/22]}\n"
    )
    snapshot = SNAPSHOT.with_node(NodeInfo("h3", ("fd00:ffff::3", "10.99.0.3")))
    reach = Reach(policy, snapshot)
    assert reach.needs("h1").policy_peers == {"h3"}
    assert reach.needs("h3").policy_peers == {"h1"}
    assert reach.needs("h2").policy_peers == frozenset()
    # h3's host table admits h1, so h3 carries h1; h1 enforces nothing about h3 (outbound)
    assert set(reach.needs("h3").snapshot.nodes) == {"h1", "h3"}
    assert set(reach.needs("h1").snapshot.nodes) == {"h1", "h3"}  # h3 as a peer, no attributes
    assert dict(reach.needs("h1").snapshot.nodes["h3"].attributes) == {}


def test_only_the_attributes_conditions_read_are_carried() -> None:
    needs = Reach(POLICY, SNAPSHOT).needs("h2")
    # ops-admin reads device.posture.healthy and device.risk_score; nothing reads location
    assert dict(needs.snapshot.nodes["h2"].attributes) == {"posture.healthy": "true", "risk_score": "10"}
    assert "location" not in needs.snapshot.nodes["h1"].attributes
    assert all(not u.attributes for u in needs.snapshot.users.values())  # user.* is never read


def test_workloads_of_another_tenant_or_unrelated_rules_are_left_out() -> None:
    needs = Reach(POLICY, SNAPSHOT).needs("h2")
    assert "hr1" not in needs.snapshot.workloads  # tenant hr: h2 serves none of it
    assert "dave" not in needs.snapshot.users


def test_a_failing_condition_keeps_the_host_out_and_time_windows_do_not() -> None:
    text = """version: 1
rules:
  - name: healthy
    from: {nodes: [h1]}
    to: {nodes: [h2]}
    ports: [tcp/22]
    when: [{attr: device.posture.healthy, op: eq, value: true}, {time: "01:00-02:00"}]
"""
    reach = Reach(load_policy(text), SNAPSHOT)  # h1 is unhealthy in the snapshot
    assert reach.needs("h2").policy_peers == frozenset()
    healthy = SNAPSHOT.with_node(
        NodeInfo("h1", ("fd00:ffff::1", "10.99.0.1"), attributes={"posture.healthy": "true"})
    )
    assert Reach(load_policy(text), healthy).needs("h2").policy_peers == {"h1"}  # window closed at NOW


def test_an_absent_test_sees_the_attribute_that_makes_it_fail() -> None:
    text = """version: 1
rules:
  - {name: a, from: "*", to: {nodes: [h2]}, ports: [tcp/22], when: [{attr: device.quarantine, op: absent}]}
"""
    snapshot = SNAPSHOT.with_node(
        NodeInfo("h1", ("fd00:ffff::1", "10.99.0.1"), attributes={"quarantine": "yes"})
    )
    needs = Reach(load_policy(text), snapshot).needs("h2", also={"h1"})
    assert needs.snapshot.nodes["h1"].attributes == {"quarantine": "yes"}
    sources = _sets(compile_host(load_policy(text), needs.snapshot, "h2", now=NOW))["ztos_r1_src4"]
    assert '"10.99.0.1"' not in sources  # quarantined h1 may not reach h2


# --- the compiler decides the host's own traffic the same with the trimmed snapshot --------


def _sets(ruleset: dict[str, Any]) -> dict[str, set[str]]:
    return {
        s["set"]["name"]: {json.dumps(e, sort_keys=True) for e in s["set"].get("elem", [])}
        for s in ruleset["nftables"]
        if "set" in s
    }


def _pairs(ruleset: dict[str, Any]) -> set[tuple[str, str]]:
    """(source set, destination set) of every policy rule."""
    found = set()
    for obj in ruleset["nftables"]:
        expr = obj.get("rule", {}).get("expr", [])
        names = [
            m["match"]["right"][1:] for m in expr if "match" in m and str(m["match"]["right"]).startswith("@")
        ]
        if obj.get("rule", {}).get("chain", "").startswith("ztos_v") and len(names) == 2:
            found.add((names[0], names[1]))
    return found


def _quoted(addresses: list[str]) -> set[str]:
    return {json.dumps(a) for a in addresses}


def assert_same_for_local_traffic(full: dict[str, Any], trimmed: dict[str, Any], local: set[str]) -> None:
    """Every set is the whole directory's, less identities the host does not carry; every
    rule decides a packet with a local end the same way."""
    before, after = _sets(full), _sets(trimmed)
    assert before.keys() == after.keys()
    assert _pairs(full) == _pairs(trimmed)
    for name in before:
        assert after[name] <= before[name], name
        assert after[name] & local == before[name] & local, name
    for src, dst in _pairs(full):
        if before[dst] & local:
            assert after[src] == before[src], (src, dst)
        if before[src] & local:
            assert after[dst] == before[dst], (src, dst)


def check_host(policy: Any, snapshot: Snapshot, node: str) -> None:
    needs = Reach(policy, snapshot).needs(node, also=set(snapshot.nodes) - {node})
    full = compile_host(policy, snapshot, node, now=NOW)
    trimmed = compile_host(policy, needs.snapshot, node, now=NOW)
    assert_same_for_local_traffic(full, trimmed, _quoted(list(snapshot.nodes[node].addresses)))
    tenants = {w.tenant for w in snapshot.workloads.values() if w.node == node}
    for tenant in sorted(tenants):
        local = [w for w in snapshot.workloads.values() if w.node == node and w.tenant == tenant]
        ports = TenantPorts("vx", "gw", {w.name: f"p-{w.name}" for w in local})
        args = (policy, snapshot, node, tenant, ports)
        full = compile_tenant(*args, now=NOW, conntrack=True)
        trimmed = compile_tenant(policy, needs.snapshot, node, tenant, ports, now=NOW, conntrack=True)
        assert_same_for_local_traffic(full, trimmed, _quoted([a for w in local for a in w.addresses]))


@pytest.mark.parametrize("node", ["h1", "h2"])
def test_the_golden_policy_compiles_the_same_for_each_hosts_traffic(node: str) -> None:
    check_host(POLICY, SNAPSHOT, node)


def _random_directory(rng: random.Random) -> tuple[Any, Snapshot]:
    nodes = [
        NodeInfo(
            f"h{i}",
            (f"fd00:ffff::{i + 1:x}", f"10.99.0.{i + 1}"),
            role=rng.choice(["node", "node", "gateway"]),
            tags=tuple(rng.sample(["edge", "core"], rng.randint(0, 1))),
            attributes={k: rng.choice(["true", "false"]) for k in ("healthy", "q") if rng.random() < 0.6},
        )
        for i in range(6)
    ]
    users = [
        UserInfo(
            u,
            groups=tuple(rng.sample(["fin", "ops"], rng.randint(0, 2))),
            attributes={"level": str(rng.randint(1, 3))},
        )
        for u in ("ann", "ben", "cy")
    ]
    workloads = [
        WorkloadInfo(
            f"w{i}",
            rng.choice(["corp", "lab"]),
            rng.choice(nodes).name,
            (f"10.30.{i}.1", f"fd00:30::{i + 1:x}"),
            owner=rng.choice([None, "ann", "ben", "cy"]),
            tags=tuple(rng.sample(["web", "db"], rng.randint(0, 1))),
            attributes={"tier": rng.choice(["a", "b"])} if rng.random() < 0.5 else {},
        )
        for i in range(12)
    ]
    selectors = [
        '"*"',
        "{groups: [fin]}",
        "{groups: [ops]}",
        "{tags: [web]}",
        "{tags: [edge]}",
        "{roles: [gateway]}",
        "{tenants: [corp]}",
        "{nodes: [h1, h2]}",
        "{workloads: [w1, w2, w3]}",
        "{users: [cy]}",
    ]
    conditions = [
        "{attr: device.healthy, op: eq, value: true}",
        "{attr: device.q, op: absent}",
        "{attr: user.level, op: ge, value: 2, of: src}",
        "{attr: workload.tier, op: ne, value: a, of: dst}",
        "{attr: device.healthy, op: ne, value: false, of: dst}",
    ]
    rules = []
    for n in range(8):
        when = ", ".join(rng.sample(conditions, rng.randint(0, 2)))
        rules.append(
            f"  - {{name: r{n}, from: {rng.choice(selectors)}, to: {rng.choice(selectors)}, "
            f"ports: [tcp/{22 + n}], when: [{when}]}}"
        )
    text = "version: 1\ngroups:\n  ops: {nodes: [h3], users: [ben]}\nrules:\n" + "\n".join(rules) + "\n"
    known = KnownNames(groups=frozenset({"fin"}), roles=frozenset({"node", "gateway"}))
    snapshot = Snapshot.build(nodes, users, workloads, groups={"fin": ["ann", "w5"]})
    return load_policy(text, "random", known), snapshot


@pytest.mark.parametrize("seed", range(25))
def test_random_policies_compile_the_same_for_each_hosts_traffic(seed: int) -> None:
    policy, snapshot = _random_directory(random.Random(seed))
    for node in snapshot.nodes:
        check_host(policy, snapshot, node)
