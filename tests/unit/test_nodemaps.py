"""Node maps on a need-to-know basis (``ztos.controller.nodemaps``): open, default deny, policy."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ztos import addressing, tenancy
from ztos.agent.enforce import Enforcer
from ztos.controller import policies
from ztos.controller.nodemaps import DEFAULT_DENY_REV, NodeMaps, directory_of, node_map
from ztos.controller.tenants import NetworkConfigRequest, configure_network
from ztos.directory.sqlite import SqliteStore
from ztos.errors import InvalidInput
from ztos.keys import generate_wg_keypair
from ztos.model import BgpSettings, Network, Node, PolicyRevision, Tenant, User, Workload
from ztos.netmap import NodeMap

NETWORK = Network(
    ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"), ipv4_prefix=ipaddress.IPv4Network("10.42.0.0/16")
)
SECRET = "posture.disk-encrypted"


def node(name: str, index: int) -> Node:
    key = generate_wg_keypair().public_key
    return Node(
        name=name,
        wg_public_key=key,
        overlay_ipv6=addressing.overlay_ipv6(NETWORK.ula_prefix, key),
        overlay_ipv4=ipaddress.IPv4Address(f"10.42.0.{10 + index}"),
        endpoints=[f"192.0.2.{10 + index}:51820"],
        cert_serial="ab",
        attributes={SECRET: "false", "posture.healthy": "true"},
    )


NODES = [node("h1", 1), node("h2", 2), node("h3", 3), node("h4", 4)]
CORP = Tenant(
    name="corp", vni=100, ipv6_prefix=ipaddress.IPv6Network("fd12:3456:789a:1::/64"), nodes=["h1", "h2"]
)
LAB = Tenant(
    name="lab", vni=200, ipv6_prefix=ipaddress.IPv6Network("fd12:3456:789a:2::/64"), nodes=["h3", "h4"]
)


def workload(name: str, tenant: Tenant, host: str, index: int) -> Workload:
    return Workload(
        name=name,
        tenant=tenant.name,
        node=host,
        mac=tenancy.workload_mac(tenant.name, name),
        ipv6=ipaddress.IPv6Interface(f"{tenant.ipv6_prefix[index + 10]}/64"),
    )


WORKLOADS = [
    workload("w1", CORP, "h1", 1),
    workload("w2", CORP, "h2", 2),
    workload("w3", LAB, "h3", 3),
    workload("w4", LAB, "h4", 4),
]


def revision(text: str) -> PolicyRevision:
    return PolicyRevision(rev="00000001", text=text, digest="d", created_by="admin")


def build(name: str, network: Network = NETWORK, text: str | None = None) -> NodeMap:
    current = revision(text) if text is not None else None
    directory = directory_of(network, NODES, [CORP, LAB], WORKLOADS, [], [], current)
    return node_map(directory, name)


def mentions(node_map: NodeMap, other: Node) -> bool:
    """Whether anything about ``other`` (name, key, endpoint, addresses) is in the map."""
    text = node_map.model_dump_json()
    clues = [other.wg_public_key, str(other.overlay_ipv6), str(other.overlay_ipv4), other.endpoints[0]]
    return any(clue in text for clue in clues) or f'"{other.name}"' in text


def test_an_open_network_keeps_every_peer_and_sends_no_policy() -> None:
    view = build("h1")
    assert [p.name for p in view.peers] == ["h2", "h3", "h4"]
    assert view.policy is None


def test_default_deny_without_a_policy_peers_only_within_tenants_and_enforces_the_empty_policy() -> None:
    view = build("h1", NETWORK.model_copy(update={"default_deny": True}))
    assert [p.name for p in view.peers] == ["h2"]
    assert view.policy is not None and view.policy["rev"] == DEFAULT_DENY_REV
    assert "rules" not in view.policy["text"]
    assert {n["name"] for n in view.policy["snapshot"]["nodes"]} == {"h1", "h2"}
    assert not mentions(view, NODES[2]) and not mentions(view, NODES[3])


def test_with_a_policy_a_host_no_rule_or_tenant_ties_to_h1_is_not_in_its_map() -> None:
    text = (
        "version: 1\nrules:\n  - {name: corp, from: {tenants: [corp]}, to: {tenants: [corp]}, ports: [any]}\n"
    )
    view = build("h1", text=text)
    assert [p.name for p in view.peers] == ["h2"]
    assert not mentions(view, NODES[2]) and not mentions(view, NODES[3])
    assert view.policy is not None
    assert {w["name"] for w in view.policy["snapshot"]["workloads"]} == {"w1", "w2"}
    assert SECRET not in json.dumps(view.policy["snapshot"])  # no rule reads it


def test_a_rule_between_hosts_makes_them_peers_both_ways_and_carries_what_it_reads() -> None:
    text = """version: 1
rules:
  - name: ssh
    from: {nodes: [h1]}
    to: {nodes: [h3]}
    ports: [tcp/22]
    when: [{attr: device.posture.healthy, op: eq, value: true}]
"""
    assert [p.name for p in build("h1", text=text).peers] == ["h2", "h3"]
    h3 = build("h3", text=text)
    assert [p.name for p in h3.peers] == ["h1", "h4"]
    assert h3.policy is not None
    carried = {n["name"]: n["attributes"] for n in h3.policy["snapshot"]["nodes"]}
    assert carried["h1"] == {"posture.healthy": "true"}  # h3's host table reads it, not the rest


def test_a_rule_across_tenants_has_no_path_and_adds_no_peer() -> None:
    text = (
        "version: 1\nrules:\n  - {name: x, from: {workloads: [w1]}, to: {workloads: [w3]}, ports: [tcp/80]}\n"
    )
    assert [p.name for p in build("h1", text=text).peers] == ["h2"]


def test_evpn_neighbours_are_the_tenant_peers_and_the_configured_ones_stay() -> None:
    bgp = BgpSettings.model_validate(
        {"asn": 65000, "evpn": True, "peers": [{"address": "192.0.2.99", "asn": 65001}]}
    )
    text = "version: 1\nrules:\n  - {name: ssh, from: {nodes: [h1]}, to: {nodes: [h3]}, ports: [tcp/22]}\n"
    view = build("h1", NETWORK.model_copy(update={"bgp": bgp}), text)
    assert view.bgp is not None
    assert [n.description for n in view.bgp.neighbors] == ["h2", "configured peer"]
    open_view = build("h1", NETWORK.model_copy(update={"bgp": bgp}))
    assert open_view.bgp is not None and len(open_view.bgp.neighbors) == 4


# --- the open / default-deny setting, stored on the Network record ---------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    directory = SqliteStore(str(tmp_path / "dir.db"))
    with directory.transaction() as tx:
        tx.create(NETWORK.model_copy(update={"bgp": BGP}))
    yield directory
    directory.close()


BGP = BgpSettings.model_validate({"asn": 65000, "evpn": True})


def test_default_deny_is_stored_alone_and_bgp_is_kept(store: SqliteStore) -> None:
    assert policies.state(store).mode == "open"
    assert "the network is open" in policies.state(store).detail
    network = configure_network(store, "admin:a", NetworkConfigRequest(default_deny=True))
    assert network.default_deny and network.bgp == BGP
    assert policies.state(store).mode == "default-deny"
    assert NodeMaps(store).directory().enforced is not None  # the empty policy, revision 0
    network = configure_network(store, "admin:a", NetworkConfigRequest(bgp=False))
    assert network.default_deny and network.bgp is None


def test_configure_refuses_an_empty_request_and_bgp_options_without_bgp(store: SqliteStore) -> None:
    with pytest.raises(InvalidInput, match="nothing to configure"):
        configure_network(store, "admin:a", NetworkConfigRequest())
    with pytest.raises(InvalidInput, match="need --bgp"):
        configure_network(store, "admin:a", NetworkConfigRequest(default_deny=True, asn=65000))
    assert not store.list(Network)[0].default_deny, "nothing half-applied"


def test_a_policy_naming_a_directory_group_loads_on_the_agent_too() -> None:
    """The controller accepts a group kept only in the directory; the agent, which has no
    directory, is told the group exists (the bundle's ``groups``) and compiles the policy."""
    rule = "{name: eng, from: {groups: [eng]}, to: {tenants: [corp]}, ports: [icmp]}"
    text = f"version: 1\nrules:\n  - {rule}\n"
    users = [User(name="ann", groups=["eng"])]
    directory = directory_of(NETWORK, NODES, [CORP, LAB], WORKLOADS, users, [], revision(text))
    view = node_map(directory, "h1")
    assert view.policy is not None and view.policy["groups"] == ["eng"]
    loaded = Enforcer(ifname="zt0", listen_port=51820).policy(view.policy)
    assert loaded.rule("eng") is not None
