import ipaddress

import pytest

from ztos import addressing, netmap, tenancy
from ztos.agent.desired import HostAddress, interface_spec, mesh_mtu, underlay_endpoints, underlay_mtu
from ztos.agent.local import verdicts, with_local_endpoints
from ztos.discovery.mdns import Sighting
from ztos.errors import Forbidden, InvalidInput, NotFound
from ztos.keys import generate_wg_keypair
from ztos.model import BgpSettings, Network, Node, NodeStatus, Tenant, Workload

NETWORK = Network(
    ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"), ipv4_prefix=ipaddress.IPv4Network("10.42.0.0/16")
)


def node(
    name: str, index: int, endpoints: list[str], status: NodeStatus = NodeStatus.ACTIVE, mtu: int = 1500
) -> Node:
    key = generate_wg_keypair().public_key
    return Node(
        name=name,
        wg_public_key=key,
        overlay_ipv6=addressing.overlay_ipv6(NETWORK.ula_prefix, key),
        overlay_ipv4=ipaddress.IPv4Address(f"10.42.0.{10 + index}"),
        endpoints=endpoints,
        status=status,
        cert_serial="ab",
        underlay_mtu=mtu,
    )


NODES = [
    node("a", 0, ["[2001:db8::11]:51820", "192.0.2.11:51820"]),
    node("b", 1, ["192.0.2.12:51820", "[2001:db8::12]:51820"]),
    node("c", 2, ["192.0.2.13:51820"], mtu=9000),
    node("d", 3, ["[2001:db8::14]:51820"], status=NodeStatus.REVOKED),
    node("e", 4, []),
]


def test_peers_are_other_active_nodes_with_preferred_endpoints() -> None:
    view = netmap.build(NETWORK, NODES, "a")
    assert [p.name for p in view.peers] == ["b", "c", "e"]
    assert [p.endpoint for p in view.peers] == ["[2001:db8::12]:51820", "192.0.2.13:51820", None]
    assert view.peers[0].allowed_ips == (f"{NODES[1].overlay_ipv6}/128", "10.42.0.11/32")
    assert view.addresses == (f"{NODES[0].overlay_ipv6}/128", "10.42.0.10/32")
    assert view.routes == ("fd12:3456:789a::/64", "10.42.0.0/16")


def test_revoked_or_unknown_node_gets_no_map() -> None:
    with pytest.raises(Forbidden, match="revoked"):
        netmap.build(NETWORK, NODES, "d")
    with pytest.raises(NotFound):
        netmap.build(NETWORK, NODES, "zz")


def test_interface_spec_and_mtu_follow_the_narrowest_path() -> None:
    view = netmap.build(NETWORK, NODES, "c")
    assert mesh_mtu(9000, view, {}) == 1420, "peers report 1500-byte underlays"
    jumbo = netmap.build(NETWORK, [n.model_copy(update={"underlay_mtu": 9000}) for n in NODES[:3]], "a")
    assert mesh_mtu(9000, jumbo, {}) == 8920
    assert mesh_mtu(9000, jumbo, {"2001:db8::12": 4000}) == 3920, "a measured path wins"
    spec = interface_spec(view, "ztos0", "/k", 1420)
    assert {p.public_key for p in spec.peers} == {p.public_key for p in view.peers}
    assert spec.listen_port == 51820 and spec.addresses == view.addresses


def test_underlay_endpoints_prefer_ipv6_and_skip_local_scopes() -> None:
    addresses = [
        HostAddress("lo", "127.0.0.1", 65536),
        HostAddress("lo", "::1", 65536),
        HostAddress("eth0", "fe80::1", 9000),
        HostAddress("eth0", "192.0.2.5", 9000),
        HostAddress("eth0", "2001:db8::5", 9000),
        HostAddress("ztos0", "fd00::1", 1420),
    ]
    endpoints = underlay_endpoints(addresses, 51820, {"ztos0"})
    assert endpoints == ["[2001:db8::5]:51820", "192.0.2.5:51820"]
    assert underlay_mtu(addresses, endpoints) == 9000
    assert underlay_mtu(addresses, []) == 1500


def tenant(name: str, vni: int, index: int, nodes: list[str]) -> Tenant:
    return Tenant(
        name=name,
        vni=vni,
        ipv6_prefix=addressing.tenant_subnet(NETWORK.ula_prefix, index),
        ipv4_prefix=ipaddress.IPv4Network("10.20.0.0/24"),
        nodes=nodes,
    )


def test_tenants_in_the_map_embedded_and_evpn() -> None:
    tenants = [tenant("blue", 100, 1, ["a", "b", "d"]), tenant("red", 101, 2, ["b"])]
    ipv6, ipv4 = tenancy.workload_addresses(tenants[0], [])
    web = Workload(
        name="web", tenant="blue", node="a", mac=tenancy.workload_mac("blue", "web"), ipv6=ipv6, ipv4=ipv4
    )
    view = netmap.build(NETWORK, NODES, "a", tenants, [web])
    assert [t.name for t in view.tenants] == ["blue"], "only tenants the node serves"
    blue = view.tenants[0]
    assert blue.remote_vteps == (str(NODES[1].overlay_ipv6),), "revoked d is no VTEP"
    assert blue.gateway_addresses == (f"{tenants[0].ipv6_prefix.network_address + 1}/64", "10.20.0.1/24")
    assert blue.workloads[0].addresses == (str(ipv6), "10.20.0.10/24")
    assert view.bgp is None
    evpn = NETWORK.model_copy(
        update={"bgp": BgpSettings(asn=65000, peers=[{"address": "2001:db8::99", "asn": 65001}])}
    )
    view = netmap.build(evpn, NODES, "a", tenants, [web])
    assert view.tenants[0].remote_vteps == ("10.42.0.11",), "EVPN uses IPv4 VTEPs"
    assert view.bgp is not None and view.bgp.router_id == "10.42.0.10"
    assert [(n.address, n.remote_as) for n in view.bgp.neighbors] == [
        (str(NODES[1].overlay_ipv6), None),
        (str(NODES[2].overlay_ipv6), None),
        (str(NODES[4].overlay_ipv6), None),
        ("2001:db8::99", 65001),
    ]


def test_tenancy_allocation() -> None:
    blue = tenant("blue", 100, 1, [])
    assert tenancy.next_vni([blue]) == 101
    assert tenancy.next_ipv6_prefix(NETWORK.ula_prefix, [blue]) == addressing.tenant_subnet(
        NETWORK.ula_prefix, 2
    )
    assert tenancy.gateway_mac(100) == "02:5a:54:00:00:64"
    first = Workload(
        name="w1",
        tenant="blue",
        node="a",
        mac="02:00:00:00:00:01",
        ipv6=tenancy.workload_addresses(blue, [])[0],
        ipv4=ipaddress.IPv4Interface("10.20.0.10/24"),
    )
    assert str(tenancy.workload_addresses(blue, [first])[1]) == "10.20.0.11/24"
    with pytest.raises(InvalidInput, match="too small"):
        tenancy.check_ipv4_subnet("10.0.0.0/30")


def test_mdns_sightings_are_trusted_only_when_the_directory_agrees() -> None:
    view = netmap.build(NETWORK, NODES, "a")
    b = view.peers[0]
    good = Sighting(
        "b", 51820, b.public_key, b.cert_serial, "default", ("fe80::1", "2001:db8::77", "192.0.2.7")
    )
    forged = Sighting(
        "b", 51820, generate_wg_keypair().public_key, b.cert_serial, "default", ("2001:db8::66",)
    )
    stale = Sighting("b", 51820, b.public_key, "ffff", "default", ("2001:db8::55",))
    revoked = Sighting("d", 51820, NODES[3].wg_public_key, "ab", "default", ("2001:db8::44",))
    judged = {(v.node, v.trusted, v.reason) for v in verdicts([forged, stale, revoked], view)}
    assert judged == {
        ("b", False, "WireGuard key does not match the directory"),
        ("b", False, "certificate serial does not match the directory"),
        ("d", False, "not an active node of this network"),
    }
    trusted = verdicts([good], view)
    assert trusted[0].trusted and trusted[0].endpoint == "[2001:db8::77]:51820", "link-local skipped"
    assert with_local_endpoints(view, trusted).peers[0].endpoint == "[2001:db8::77]:51820"
    assert with_local_endpoints(view, verdicts([forged], view)) == view
