"""Who a change concerns (``ztos.controller.audience``), checked against the maps themselves.

The property: for a random directory and a random change, every host *left
out* of the audience builds exactly the map it built before the change (or
fails the same way), so waking only the audience loses nobody. The same runs
check that the incrementally moved directory builds the same maps as one read
whole. A few cases pin that the audience is also tight where it matters.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ztos import addressing, tenancy
from ztos.controller.audience import affected
from ztos.controller.nodemaps import Directory, advanced, directory_of, node_map
from ztos.directory import Change
from ztos.errors import ZtosError
from ztos.keys import generate_wg_keypair
from ztos.model import (
    Group,
    Network,
    Node,
    NodeStatus,
    PolicyHead,
    PolicyRevision,
    Record,
    Tenant,
    User,
    Workload,
)

NETWORK = Network(
    ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"), ipv4_prefix=ipaddress.IPv4Network("10.42.0.0/16")
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = [generate_wg_keypair().public_key for _ in range(8)]
POLICIES = {
    "00000001": "version: 1\nrules:\n"
    "  - {name: corp, from: {tenants: [corp]}, to: {tenants: [corp]}, ports: [any]}\n",
    "00000002": """version: 1
rules:
  - name: ssh
    from: {nodes: [h1, h2]}
    to: {tags: [db]}
    ports: [tcp/22]
    when: [{attr: device.posture.healthy, op: eq, value: true}]
  - {name: ops, from: {groups: [ops]}, to: {nodes: [h5]}, ports: [tcp/443]}
  - {name: web, from: {workloads: [w1]}, to: {workloads: [w2, w3]}, ports: [tcp/80]}
""",
}


def node(index: int, **fields: object) -> Node:
    key = KEYS[index]
    record = Node(
        name=f"h{index}",
        wg_public_key=key,
        overlay_ipv6=addressing.overlay_ipv6(NETWORK.ula_prefix, key),
        overlay_ipv4=ipaddress.IPv4Address(f"10.42.0.{10 + index}"),
        endpoints=[f"192.0.2.{10 + index % 4}:51820"],  # h0 and h4, h1 and h5 claim one address
        cert_serial=f"s{index}",
        enrolled_at=T0 + timedelta(minutes=index),
        attributes={"posture.healthy": "true", "posture.os": "debian", "tags": "" if index % 3 else "db"},
    )
    return record.model_copy(update=fields)


def tenant(name: str, vni: int, members: list[str]) -> Tenant:
    prefix = ipaddress.IPv6Network(f"fd12:3456:789a:{vni}::/64")
    return Tenant(name=name, vni=vni, ipv6_prefix=prefix, nodes=members)


def workload(name: str, tenant_: Tenant, host: str, index: int) -> Workload:
    return Workload(
        name=name,
        tenant=tenant_.name,
        node=host,
        mac=tenancy.workload_mac(tenant_.name, name),
        ipv6=ipaddress.IPv6Interface(f"{tenant_.ipv6_prefix[index + 10]}/64"),
    )


def revision(key: str) -> PolicyRevision:
    return PolicyRevision(rev=key, text=POLICIES[key], digest="d", created_by="admin")


CORP = tenant("corp", 100, ["h1", "h2", "h3"])
LAB = tenant("lab", 200, ["h4", "h5"])


def base(policy: str | None, default_deny: bool = False) -> Directory:
    network = NETWORK.model_copy(update={"default_deny": default_deny})
    workloads = [workload("w1", CORP, "h1", 1), workload("w2", CORP, "h2", 2), workload("w3", LAB, "h4", 3)]
    users = [User(name="ann", groups=["ops"])]
    nodes = [node(i) for i in range(7)]
    current = None if policy is None else revision(policy)
    groups = [Group(name="ops", members=["h3"])]  # defined, so a user leaving it keeps the policy valid
    return directory_of(network, nodes, [CORP, LAB], workloads, users, groups, current, revision=100)


def put(record: Record, rev: int) -> Change:
    return Change(rev=rev, kind=record.kind, key=record.key, op="put", data=record.model_dump(mode="json"))


def delete(kind: str, key: str, rev: int) -> Change:
    return Change(rev=rev, kind=kind, key=key, op="delete", data=None)


Mutation = Callable[[Directory, random.Random, int], list[Change]]


def some_node(d: Directory, rng: random.Random) -> Node:
    return d.nodes[rng.choice(sorted(d.nodes))]


def set_attribute(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    key = rng.choice(["posture.healthy", "posture.os", "tags"])
    value = rng.choice(["true", "false", "db", "web", ""])
    n = some_node(d, rng)
    return [put(n.model_copy(update={"attributes": {**n.attributes, key: value}}), rev)]


def move_endpoint(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    n = some_node(d, rng)
    address = f"192.0.2.{rng.randint(10, 14)}:51820"
    field = rng.choice(["endpoints", "observed_endpoint"])
    value = [address] if field == "endpoints" else address
    return [put(n.model_copy(update={field: value}), rev)]


def revoke(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    n = some_node(d, rng)
    status = NodeStatus.ACTIVE if n.status is NodeStatus.REVOKED else NodeStatus.REVOKED
    return [put(n.model_copy(update={"status": status}), rev)]


def remove_node(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    return [delete("node", some_node(d, rng).name, rev)]


def join_node(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    return [put(node(7, endpoints=[f"192.0.2.{rng.randint(10, 14)}:51820"]), rev)]


def change_membership(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    t = d.tenants[rng.choice(sorted(d.tenants))]
    name = some_node(d, rng).name
    members = [m for m in t.nodes if m != name] if name in t.nodes else [*t.nodes, name]
    return [put(t.model_copy(update={"nodes": members}), rev)]


def change_workload(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    if d.workloads and rng.random() < 0.5:
        return [delete("workload", rng.choice(sorted(d.workloads)), rev)]
    t = d.tenants[rng.choice(sorted(d.tenants))]
    host = rng.choice(t.nodes) if t.nodes else "h6"
    return [put(workload(rng.choice(["w1", "w2", "w9"]), t, host, rng.randint(20, 40)), rev)]


def change_policy(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    key = rng.choice(["00000001", "00000002"])
    return [put(revision(key), rev), put(PolicyHead(rev=key), rev + 1)]


def change_user(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    return [put(User(name="ann", groups=rng.choice([["ops"], []])), rev)]


def unrelated(d: Directory, rng: random.Random, rev: int) -> list[Change]:
    return [Change(rev=rev, kind="token", key="t1", op="put", data={})]


MUTATIONS: list[Mutation] = [
    set_attribute,
    set_attribute,
    move_endpoint,
    revoke,
    remove_node,
    join_node,
    change_membership,
    change_workload,
    change_policy,
    change_user,
    unrelated,
]


def outcome(d: Directory, name: str) -> str:
    try:
        return node_map(d, name).model_dump_json()
    except ZtosError as exc:
        return f"{exc.code}: {exc.detail}"


def reader(rev: str) -> PolicyRevision | None:
    return revision(rev) if rev in POLICIES else None


def whole(d: Directory) -> Directory:
    """The same records read whole (what a replica starting now would hold)."""
    return directory_of(
        d.network,
        d.nodes.values(),
        d.tenants.values(),
        d.workloads.values(),
        d.users.values(),
        d.groups.values(),
        d.current,
        d.revision,
    )


@pytest.mark.parametrize("start", [None, "default-deny", "00000001", "00000002"])
def test_every_host_left_out_of_the_audience_keeps_its_map(start: str | None) -> None:
    rng = random.Random(f"audience-{start}")
    deny = start == "default-deny"
    policy = start if start in POLICIES else None
    for _ in range(60):  # a walk: each step starts from the directory the last one left
        d = base(policy, deny)
        for step in range(4):
            mutation = rng.choice(MUTATIONS)
            changes = mutation(d, rng, d.revision + 1)
            after = advanced(d, changes, reader)
            audience = affected(d, after, changes)
            for name in sorted(d.nodes.keys() | after.nodes.keys()):
                assert outcome(after, name) == outcome(whole(after), name), (mutation.__name__, name)
                if not audience.includes(name):
                    assert outcome(d, name) == outcome(after, name), (mutation.__name__, step, name, changes)
            d = after


def test_an_attribute_no_condition_reads_concerns_only_its_node() -> None:
    d = base("00000002")
    h1 = d.nodes["h1"]
    changes = [put(h1.model_copy(update={"attributes": {**h1.attributes, "posture.os": "alpine"}}), 101)]
    assert affected(d, advanced(d, changes, reader), changes).nodes == {"h1"}


def test_a_condition_read_attribute_concerns_the_node_and_its_peers_only() -> None:
    d = base("00000002")
    h1 = d.nodes["h1"]
    changes = [put(h1.model_copy(update={"attributes": {**h1.attributes, "posture.healthy": "false"}}), 101)]
    audience = affected(d, advanced(d, changes, reader), changes)
    assert not audience.everyone
    assert audience.nodes == {"h1"} | d.peers_of("h1")
    assert "h5" not in audience.nodes  # no rule lets h1 and h5 talk, they share no tenant


def test_open_network_posture_wakes_nobody_else_and_an_endpoint_wakes_every_peer() -> None:
    d = base(None)
    h2 = d.nodes["h2"]
    posture = [put(h2.model_copy(update={"attributes": {"posture.healthy": "false"}}), 101)]
    assert affected(d, advanced(d, posture, reader), posture).nodes == {"h2"}
    moved = [put(h2.model_copy(update={"observed_endpoint": "198.51.100.2:51820"}), 101)]
    assert affected(d, advanced(d, moved, reader), moved).nodes == set(d.active)


def test_policy_and_network_changes_concern_everyone_and_tokens_nobody() -> None:
    d = base("00000001")
    policy = [put(revision("00000002"), 101), put(PolicyHead(rev="00000002"), 102)]
    assert affected(d, advanced(d, policy, reader), policy).everyone
    token = unrelated(d, random.Random(0), 101)
    after = advanced(d, token, reader)
    assert affected(d, after, token).nodes == frozenset() and not affected(d, after, token).everyone
    assert after.revision == 101 and after.reach is d.reach  # nothing resolved again
