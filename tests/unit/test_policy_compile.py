"""Compilation to nft JSON (golden files), set naming, element diffs, drop-log naming.

Golden files live in ``tests/golden/policy/``; after an intended change to the
compiler, regenerate them with ``ZTOS_UPDATE_GOLDEN=1 pytest tests/unit/test_policy_compile.py``
and review the diff. The integration suite loads the same rulesets into nftables.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import pytest

from golden_policy import GOLDEN, NOW, POLICY, SNAPSHOT
from ztos.policy import (
    BASE_TABLE,
    HostPorts,
    Snapshot,
    TenantPorts,
    UserInfo,
    compile_base,
    compile_gateway,
    compile_host,
    compile_tenant,
    diff_sets,
    load_policy,
    name_drop,
    structure_digest,
)
from ztos.policy.compile import tenant_table

CORP = {"family": "bridge", "table": "ztos-t-corp"}
H1_PORTS = TenantPorts("zt-v100", "zt-g100", {"fin1": "zt-wfin1", "pg2": "zt-wpg2", "mkt1": "zt-wmkt1"})


def tenant(policy: Any = POLICY, snapshot: Snapshot = SNAPSHOT, conntrack: bool = False) -> dict[str, Any]:
    return compile_tenant(policy, snapshot, "h1", "corp", H1_PORTS, now=NOW, conntrack=conntrack)


def check_golden(name: str, ruleset: dict[str, Any]) -> None:
    """One nft object per line, so a review diff shows which rule or set changed."""
    lines = ",\n".join(json.dumps(obj, sort_keys=True) for obj in ruleset["nftables"])
    text = '{"nftables": [\n' + lines + "\n]}\n"
    assert json.loads(text) == ruleset
    path = GOLDEN / name
    if os.environ.get("ZTOS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"compilation differs from {path} (ZTOS_UPDATE_GOLDEN=1 to update)"


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("finance.tenant-corp-h1.stateless.json", lambda: tenant()),
        ("finance.tenant-corp-h1.conntrack.json", lambda: tenant(conntrack=True)),
        (
            "finance.host-h1.json",
            lambda: compile_host(POLICY, SNAPSHOT, "h1", now=NOW, ports=HostPorts(api=8443)),
        ),
    ],
)
def test_compilation_matches_golden(name: str, build: Any) -> None:
    check_golden(name, build())


def objects(ruleset: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [obj[kind] for obj in ruleset["nftables"] if kind in obj]


def elements(ruleset: dict[str, Any], name: str) -> list[Any]:
    return next(s.get("elem", []) for s in objects(ruleset, "set") if s["name"] == name)


def test_sets_are_named_per_rule_side_and_hold_the_tenants_addresses_only() -> None:
    ruleset = tenant()
    assert tenant_table("corp") == "ztos-t-corp"
    names = [s["name"] for s in objects(ruleset, "set")]
    assert {"ztos_r1_src4", "ztos_r1_src6", "ztos_r1_db_dst4", "ztos_r3_dst6", "ztos_bind4"} <= set(names)
    assert elements(ruleset, "ztos_r1_src4") == ["10.30.0.10"], (
        "fin1 only: dave's hr1 shares the address in hr"
    )
    assert elements(ruleset, "ztos_r1_db_dst4") == ["10.30.0.11", "10.30.0.12"]
    assert elements(ruleset, "ztos_r3_src4") == ["10.30.0.15"], "ops1 only: ops2's device is unhealthy"
    assert elements(ruleset, "ztos_r3_dst4") == [f"10.30.0.{n}" for n in range(10, 17)]
    assert all("flags" not in s for s in objects(ruleset, "set")), "host identities only: hash sets"
    assert not any(s["name"].startswith("ztos_r5") for s in objects(ruleset, "set")), "node-only rule"
    assert all(
        obj.get("table") == "ztos-t-corp" for obj in (*objects(ruleset, "set"), *objects(ruleset, "rule"))
    )


def test_every_rule_is_counted_and_the_default_drop_is_logged_with_a_rate_limit() -> None:
    ruleset = tenant()
    accepting = [r for r in objects(ruleset, "rule") if r["chain"] in ("ztos_v4", "ztos_v6")]
    assert accepting and all({"counter": None} in r["expr"] for r in accepting)
    logs = [r for r in objects(ruleset, "rule") if any("log" in e for e in r["expr"])]
    assert {r["chain"] for r in logs} >= {
        "ztos_log_w_fin1",
        "ztos_log_remote",
        "ztos_log_gateway",
        "ztos_spoof",
    }
    assert all(r["expr"][0] == {"limit": {"rate": 10, "burst": 20, "per": "second"}} for r in logs)


def test_membership_posture_and_time_change_only_set_elements() -> None:
    before = tenant()
    no_alice = load_policy((GOLDEN / "finance.yaml").read_text().replace("users: [alice]", "users: []"))
    after = tenant(no_alice)
    assert structure_digest(before) == structure_digest(after)
    assert diff_sets(before, after) == [
        {"delete": {"element": {**CORP, "name": "ztos_r1_src4", "elem": ["10.30.0.10"]}}},
        {"delete": {"element": {**CORP, "name": "ztos_r1_src6", "elem": ["fd00:30::10"]}}},
    ]
    healthy = SNAPSHOT.with_node(replace(SNAPSHOT.nodes["h1"], attributes={"posture.healthy": "true"}))
    assert diff_sets(before, tenant(snapshot=healthy)) == [], (
        "risk_score now missing: ops2 still fails closed"
    )
    healthy = SNAPSHOT.with_node(
        replace(SNAPSHOT.nodes["h1"], attributes={"posture.healthy": "true", "risk_score": "1"})
    )
    added = diff_sets(before, tenant(snapshot=healthy))
    assert added and all("add" in c for c in added)
    assert diff_sets(before, before) == []


def test_a_changed_rule_list_needs_a_full_swap() -> None:
    text = (GOLDEN / "finance.yaml").read_text().replace("ports: [udp/53]", "ports: [udp/53, tcp/53]")
    assert diff_sets(tenant(), tenant(load_policy(text))) is None
    moved = replace(H1_PORTS, workloads={**H1_PORTS.workloads, "ops2": "zt-wops2"})
    with_port = compile_tenant(POLICY, SNAPSHOT, "h1", "corp", moved, now=NOW, conntrack=False)
    assert diff_sets(tenant(), with_port) is None, "a new local workload gets its own log chain"


def test_the_meta_chain_carries_the_structure_digest() -> None:
    ruleset = tenant()
    meta = [r for r in objects(ruleset, "rule") if r["chain"] == "ztos_meta"]
    digest = f"ztos structure sha256={structure_digest(ruleset)}"
    assert meta == [{**CORP, "chain": "ztos_meta", "expr": [{"return": None}], "comment": digest}]


def test_stateful_tables_mark_flows_and_recheck_them_by_clause() -> None:
    ruleset = tenant(conntrack=True)
    forward = [r["expr"] for r in objects(ruleset, "rule") if r["chain"] == "forward"]
    dispatch = next(e[1]["vmap"] for e in forward if len(e) == 2 and "vmap" in e[1])
    assert dispatch["key"] == {"ct": {"key": "mark"}}
    assert [k for k, _ in dispatch["data"]["set"]] == [1, 2, 3, 4], (
        "clause numbers; mesh-ssh (5) is node-only"
    )
    est = [r["expr"] for r in objects(ruleset, "rule") if r["chain"] == "ztos_est_r1_db"]
    assert len(est) == 4 and all(e[0]["match"]["left"] == {"ct": {"key": "direction"}} for e in est)
    assert not [r for r in objects(ruleset, "rule") if r.get("comment", "").endswith(" reply")]
    stateless = tenant()
    assert [r for r in objects(stateless, "rule") if r.get("comment", "").endswith(" reply")]


def test_the_host_table_admits_only_what_targets_this_node() -> None:
    h1 = compile_host(POLICY, SNAPSHOT, "h1", now=NOW)
    h2 = compile_host(POLICY, SNAPSHOT, "h2", now=NOW)
    assert elements(h1, "ztos_r5_dst6") == ["fd00:ffff::1"] and elements(h2, "ztos_r5_dst6") == [
        "fd00:ffff::2"
    ]
    assert elements(h1, "ztos_r5_src4") == ["10.99.0.1", "10.99.0.2"]
    assert elements(h1, "ztos_nodes6") == ["fd00:ffff::1", "fd00:ffff::2"]
    comments = [r.get("comment") for r in objects(h1, "rule") if r["chain"] == "input"]
    assert comments[:3] == ["wireguard", "vxlan only over wireguard", "not overlay traffic"]
    assert "controller api" not in comments


def test_drop_log_lines_are_named() -> None:
    line = (
        "[ 3521.75] ztos-drop corp fin1: IN=zt-wfin1 OUT=zt-v100 MAC=02:30 "
        "SRC=fd00:0030:0000:0000:0000:0000:0000:0010 DST=fd00:0030:0000:0000:0000:0000:0000:0011 "
        "LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=TCP SPT=4 DPT=22 SYN"
    )
    assert str(name_drop(line, SNAPSHOT)) == "corp: fin1 -> pg1 tcp/22 dropped"
    icmp = (
        "ztos-drop hr remote: IN=zt-v200 OUT=zt-whr1 SRC=10.30.0.10 DST=10.30.0.99 LEN=84 PROTO=ICMP TYPE=8"
    )
    assert str(name_drop(icmp, SNAPSHOT)) == "hr: hr1 -> 10.30.0.99 icmp dropped", "tenant-scoped addresses"
    host = "ztos-drop host: IN=ztos0 OUT= SRC=10.99.0.2 DST=10.99.0.1 PROTO=UDP SPT=1 DPT=53"
    assert str(name_drop(host, SNAPSHOT)) == "host: h2 -> h1 udp/53 dropped"
    assert name_drop("kernel: eth0 link up", SNAPSHOT) is None


def test_users_joining_show_up_as_additions() -> None:
    joined = SNAPSHOT.with_user(UserInfo("bob", groups=("finance",)))
    added = diff_sets(tenant(), tenant(snapshot=joined))
    assert added == [
        {"add": {"element": {**CORP, "name": "ztos_r1_src4", "elem": ["10.30.0.13"]}}},
        {"add": {"element": {**CORP, "name": "ztos_r1_src6", "elem": ["fd00:30::13"]}}},
    ]


def test_sides_written_alike_share_their_sets() -> None:
    text = """
groups:
  g: {users: [alice]}
rules:
  - {name: a, from: {groups: [g]}, to: {workloads: [pg1]}, ports: [tcp/1]}
  - {name: b, from: {groups: [g]}, to: {workloads: [pg1]}, ports: [tcp/2]}
  - name: c
    from: {groups: [g]}
    to: {workloads: [pg1]}
    ports: [tcp/3]
    when: [{attr: device.risk_score, op: lt, value: 90}]
"""
    ruleset = tenant(load_policy(text))
    names = [s["name"] for s in objects(ruleset, "set") if s["name"].startswith("ztos_r")]
    assert names == [
        "ztos_r1_src4", "ztos_r1_src6", "ztos_r1_dst4", "ztos_r1_dst6", "ztos_r3_src4", "ztos_r3_src6",
    ], "b reuses a's sets; c's source has a condition, its destination does not"  # fmt: skip
    second = next(r for r in objects(ruleset, "rule") if r.get("comment") == "r2 b")
    assert [e["match"]["right"] for e in second["expr"][:2]] == ["@ztos_r1_src4", "@ztos_r1_dst4"]


def test_a_prefix_identity_turns_address_sets_into_collapsed_interval_sets() -> None:
    routed = replace(SNAPSHOT.workloads["pg2"], addresses=("10.30.0.12/30", "fd00:30::12"))
    snapshot = replace(SNAPSHOT, workloads={**SNAPSHOT.workloads, "pg2": routed})
    ruleset = tenant(snapshot=snapshot)
    assert elements(ruleset, "ztos_r3_dst4") == [
        {"prefix": {"addr": "10.30.0.10", "len": 31}},
        {"prefix": {"addr": "10.30.0.12", "len": 30}},
        "10.30.0.16",
    ], "collapsed"
    flagged = {s["name"]: s.get("flags") for s in objects(ruleset, "set")}
    assert flagged["ztos_r3_dst4"] == ["interval"] and flagged["ztos_ports"] is None
    assert diff_sets(tenant(), ruleset) is None, "hash -> interval sets is a structure change (a swap)"


def test_base_table_drops_vxlan_bgp_and_overlay_traffic_not_from_wireguard() -> None:
    base = compile_base(
        HostPorts(wg_ifname="zt0"), ["fd00::1", "100.64.0.1"], bgp_peers=["192.0.2.9"], vxlan_ports=[4790]
    )
    rules = {o["rule"]["comment"]: o["rule"]["expr"] for o in base["nftables"] if "rule" in o}
    chain = next(o["chain"] for o in base["nftables"] if "chain" in o and o["chain"].get("hook"))
    assert (chain["table"], chain["hook"], chain["prio"]) == (BASE_TABLE, "input", -10)
    not_wg = {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "zt0"}}
    vxlan = rules["vxlan only over wireguard"]
    assert not_wg in vxlan and {"drop": None} in vxlan
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                      "right": {"set": [4789, 4790]}}} in vxlan  # fmt: skip
    overlay = json.dumps(rules["overlay only over wireguard"])
    assert "fd00::1" in overlay and '"lo"' in overlay and "drop" in overlay
    assert "192.0.2.9" in json.dumps(rules["configured bgp peers"])
    assert "drop" in json.dumps(rules["bgp only over wireguard"])
    accepts = [c for c, expr in rules.items() if {"accept": None} in expr]
    assert accepts == ["configured bgp peers"], "the base table only drops (and lets configured peers be)"


def test_base_table_forward_chain_drops_the_underlay_relayed_into_the_mesh() -> None:
    base = compile_base(HostPorts(wg_ifname="zt0"), ["fd00::1"], mesh_prefixes=["fd00::/64", "100.64.0.0/24"])
    hooks = {o["chain"]["name"]: o["chain"].get("hook") for o in base["nftables"] if "chain" in o}
    assert hooks["input"] == "input" and hooks["forward"] == "forward"
    relayed = [o["rule"] for o in base["nftables"] if "rule" in o and o["rule"]["chain"] == "forward"]
    assert len(relayed) == 2, "one rule per IP version"
    for rule in relayed:
        assert {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "zt0"}} in rule["expr"]
        assert rule["expr"][-1] == {"drop": None}
    assert '"len": 64' in json.dumps(relayed) and '"len": 24' in json.dumps(relayed)


def test_gateway_table_accepts_ping_nd_and_replies_and_drops_the_rest() -> None:
    gateway = compile_gateway()
    rules = [o["rule"] for o in gateway["nftables"] if "rule" in o and o["rule"]["chain"] == "input"]
    assert "echo-request" in json.dumps(rules[3]["expr"]) and "icmpv6" in json.dumps(rules[4]["expr"])
    assert "nd-neighbor-solicit" in json.dumps(rules[2]["expr"])
    assert rules[-1]["expr"] == [{"counter": None}, {"drop": None}], "drop, never reject"
    assert not [r for r in rules if "reject" in json.dumps(r)]
