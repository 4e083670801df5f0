"""``decide`` (``ztos policy test``): which rule decided, and why; conditions and time windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from golden_policy import GOLDEN, POLICY, SNAPSHOT
from golden_policy import NOW as MONDAY_NOON
from ztos.errors import InvalidInput, NotFound
from ztos.model import Group, Node, NodeStatus, User, Workload
from ztos.policy import Snapshot, UserInfo, WorkloadInfo, decide, load_policy, next_change
from ztos.policy.resolve import Resolver, compare


def allowed(src: str, dst: str, flow: str, snapshot: Snapshot = SNAPSHOT) -> bool:
    proto, _, port = flow.partition("/")
    return decide(POLICY, snapshot, src, dst, proto, int(port) if port else None, MONDAY_NOON).allowed


@pytest.mark.parametrize(
    ("src", "dst", "flow", "expected"),
    [
        ("fin1", "pg1", "tcp/5432", True),  # group finance through owner alice -> service db
        ("fin1", "pg2", "tcp/5432", True),
        ("fin1", "pg1", "tcp/5433", False),
        ("fin1", "pg1", "tcp/22", False),
        ("fin1", "pg1", "icmp", False),
        ("pg1", "fin1", "tcp/5432", False),  # direction matters
        ("mkt1", "pg1", "tcp/5432", False),
        ("mkt1", "web1", "tcp/443", True),  # service by tag, ports from the service
        ("mkt1", "web1", "tcp/8080", False),
        ("ops1", "fin1", "tcp/22", True),  # carol in ops, h2 healthy and low risk
        ("ops1", "fin1", "icmp", True),
        ("ops2", "fin1", "tcp/22", False),  # h1 unhealthy
        ("pg2", "web1", "udp/53", True),  # from "*"
        ("pg2", "web1", "tcp/53", False),
        ("h1", "h2", "tcp/22", True),  # nodes of group ops
        ("h2", "h1", "tcp/22", True),
        ("h1", "h2", "tcp/23", False),
        ("hr1", "pg1", "tcp/5432", False),  # dave is in finance (directory), but hr never reaches corp
        ("fin1", "h1", "tcp/22", False),  # workloads and nodes never meet
    ],
)
def test_decisions(src: str, dst: str, flow: str, expected: bool) -> None:
    assert allowed(src, dst, flow) is expected


def test_an_allow_names_the_rule_its_line_and_why() -> None:
    decision = decide(POLICY, SNAPSHOT, "fin1", "pg1", "tcp", 5432, MONDAY_NOON)
    assert decision.rule == "finance-to-db"
    assert decision.reason == (
        "rule 'finance-to-db' (line 29) service db: fin1 is in group finance through its owner alice; "
        "pg1 is in service db; tcp/5432 is in [tcp/5432]"
    )
    assert str(decision).startswith("ALLOW: ")


def test_a_denial_names_the_closest_rule_and_what_it_lacked() -> None:
    decision = decide(POLICY, SNAPSHOT, "mkt1", "pg1", "tcp", 5432, MONDAY_NOON)
    assert not decision.allowed and decision.rule is None
    assert decision.reason == (
        "default deny: no rule matched; closest: rule 'finance-to-db' (line 29) service db: "
        "mkt1 is not in [group finance]"
    )
    posture = decide(POLICY, SNAPSHOT, "ops2", "fin1", "tcp", 22, MONDAY_NOON)
    assert "device.posture.healthy of ops2 is 'false' (eq true: no)" in posture.reason
    assert "device.risk_score of ops2 is '80' (lt 50: no)" in posture.reason


def test_no_path_and_bad_questions() -> None:
    assert (
        "tenant corp, hr1 in hr" in decide(POLICY, SNAPSHOT, "fin1", "hr1", "tcp", 5432, MONDAY_NOON).reason
    )
    assert decide(POLICY, SNAPSHOT, "fin1", "workload:fin1", "tcp", 1, MONDAY_NOON).allowed
    with pytest.raises(NotFound):
        decide(POLICY, SNAPSHOT, "nobody", "pg1", "tcp", 5432, MONDAY_NOON)
    with pytest.raises(NotFound):
        decide(POLICY, SNAPSHOT, "node:fin1", "pg1", "tcp", 5432, MONDAY_NOON)
    with pytest.raises(InvalidInput, match="tcp needs a port"):
        decide(POLICY, SNAPSHOT, "fin1", "pg1", "tcp", None, MONDAY_NOON)
    with pytest.raises(InvalidInput, match="icmp takes no port"):
        decide(POLICY, SNAPSHOT, "fin1", "pg1", "icmp", 8, MONDAY_NOON)
    empty = load_policy("rules: []")
    assert decide(empty, SNAPSHOT, "fin1", "pg1", "tcp", 5432, MONDAY_NOON).reason == (
        "default deny: the policy has no rules"
    )


def test_membership_follows_the_directory() -> None:
    alice_left = SNAPSHOT.with_user(UserInfo("alice", groups=("finance",)))
    assert allowed("fin1", "pg1", "tcp/5432", alice_left), "directory group membership counts too"
    policy = load_policy((GOLDEN / "finance.yaml").read_text().replace("users: [alice]", "users: []"))
    assert not decide(policy, SNAPSHOT, "fin1", "pg1", "tcp", 5432, MONDAY_NOON).allowed


@pytest.mark.parametrize(
    ("op", "actual", "value", "expected"),
    [
        ("eq", "true", True, True),
        ("eq", "True", True, True),
        ("eq", "10", 10, True),
        ("eq", "10.0", 10, True),
        ("ne", "a", "b", True),
        ("ne", None, "b", False),  # fail closed
        ("in", "eu-west", ("eu-west", "eu-central"), True),
        ("not_in", "us", ("eu-west",), True),
        ("lt", "10", 50, True),
        ("lt", "high", 50, False),
        ("ge", "50", 50, True),
        ("exists", "", None, True),
        ("exists", None, None, False),
        ("absent", None, None, True),
    ],
)
def test_attribute_comparisons(op: str, actual: str | None, value: object, expected: bool) -> None:
    assert compare(op, actual, value) is expected


def test_roles_tags_users_and_attribute_scopes() -> None:
    text = """
roles:
  dba: {users: [bob], groups: [finance]}
groups:
  finance: {users: [alice]}
rules:
  - {name: by-role, from: {roles: [dba]}, to: {tags: [web]}, ports: [tcp/1]}
  - {name: builtin-role, from: {roles: [operator]}, to: {users: [bob]}, ports: [tcp/2]}
  - name: by-user-attr
    from: {users: [alice]}
    to: {nodes: [h2], workloads: [pg1]}
    ports: [tcp/3]
    when:
      - {attr: user.department, op: eq, value: finance}
      - {attr: device.location, op: eq, value: eu-central, of: dst}
  - name: by-tenant
    from: {tenants: [hr]}
    to: "*"
    ports: [tcp/4]
    when: [{attr: tenant, op: eq, value: hr}]
  - {name: edge, from: {tags: [edge]}, to: {roles: [node]}, ports: [tcp/5]}
"""
    policy = load_policy(text)

    def ok(src: str, dst: str, port: int) -> bool:
        return decide(policy, SNAPSHOT, src, dst, "tcp", port, MONDAY_NOON).allowed

    assert ok("mkt1", "web1", 1) and ok("fin1", "web1", 1) and not ok("pg1", "web1", 1)
    assert ok("ops1", "mkt1", 2) and not ok("fin1", "mkt1", 2)
    assert ok("fin1", "pg1", 3), "pg1 runs on h2, in eu-central"
    assert not ok("fin1", "pg2", 3)
    assert not ok("hr1", "fin1", 4), "hr and corp never meet"
    assert ok("h1", "h2", 5) and not ok("h2", "h1", 5)
    resolver = Resolver(policy, SNAPSHOT)
    assert resolver.attribute("device.location", ("workload", "pg2")) == "eu-west"
    assert resolver.attribute("user.department", ("node", "h1")) is None


def test_time_windows_open_and_close_in_their_zone() -> None:
    text = """
rules:
  - name: office
    from: "*"
    to: {workloads: [pg1]}
    ports: [tcp/5432]
    when: [{time: "08:00-18:00", days: [mon, tue, wed, thu, fri], tz: Europe/Paris}]
  - name: night
    from: "*"
    to: {workloads: [pg2]}
    ports: [tcp/5432]
    when: [{time: "22:00-02:00", days: [fri]}]
"""
    policy = load_policy(text)

    def at(when: datetime, dst: str = "pg1") -> bool:
        return decide(policy, SNAPSHOT, "fin1", dst, "tcp", 5432, when).allowed

    assert at(datetime(2025, 1, 6, 7, 30, tzinfo=UTC)), "08:30 in Paris on a Monday"
    assert not at(datetime(2025, 1, 6, 6, 30, tzinfo=UTC)), "07:30 in Paris"
    assert not at(datetime(2025, 1, 6, 17, 0, tzinfo=UTC)), "18:00 in Paris: closed (end excluded)"
    assert not at(datetime(2025, 1, 4, 12, 0, tzinfo=UTC)), "Saturday"
    assert at(datetime(2025, 1, 10, 23, 0, tzinfo=UTC), "pg2") and at(
        datetime(2025, 1, 11, 1, 0, tzinfo=UTC), "pg2"
    )
    assert not at(datetime(2025, 1, 11, 23, 0, tzinfo=UTC), "pg2"), "Saturday night is not Friday's window"
    closed = decide(policy, SNAPSHOT, "fin1", "pg1", "tcp", 5432, datetime(2025, 1, 4, 12, 0, tzinfo=UTC))
    assert "time window 08:00-18:00 mon,tue,wed,thu,fri Europe/Paris is closed" in closed.reason
    assert next_change(policy, datetime(2025, 1, 6, 12, 0, tzinfo=UTC)) == datetime(
        2025, 1, 6, 17, 0, tzinfo=UTC
    )
    assert next_change(POLICY, MONDAY_NOON) is None


def test_snapshots_round_trip_as_data_and_come_from_directory_records() -> None:
    assert Snapshot.from_data(json.loads(json.dumps(SNAPSHOT.to_data()))) == SNAPSHOT
    with pytest.raises(InvalidInput, match="snapshot"):
        Snapshot.from_data({"nodes": [{"name": "h1"}]})
    key = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTEyMzQ="
    nodes = [
        Node(name=n, wg_public_key=key, overlay_ipv6=f"fd00::{i}", overlay_ipv4=f"10.99.0.{i}",
             cert_serial="1", status=NodeStatus.ACTIVE if n == "h1" else NodeStatus.REVOKED,
             attributes={"tags": "edge, gpu"})
        for i, n in ((1, "h1"), (2, "h2"))
    ]  # fmt: skip
    workloads = [
        Workload(name=w, tenant="corp", node=n, mac="02:00:00:00:00:01", ipv6="fd00:30::10/64",
                 ipv4="10.30.0.10/24", owner="alice", tags=["db"])
        for w, n in (("fin1", "h1"), ("gone", "h2"))
    ]  # fmt: skip
    snap = Snapshot.from_records(
        nodes, [User(name="alice", groups=["finance"])], workloads, [Group(name="g", members=["x"])]
    )
    assert list(snap.nodes) == ["h1"] and snap.nodes["h1"].tags == ("edge", "gpu")
    assert list(snap.workloads) == ["fin1"], "workloads of revoked nodes are left out"
    assert snap.workloads["fin1"] == WorkloadInfo(
        "fin1", "corp", "h1", ("fd00:30::10", "10.30.0.10"), "alice", ("db",)
    )
    assert snap.users["alice"].groups == ("finance",) and snap.groups == {"g": frozenset({"x"})}
