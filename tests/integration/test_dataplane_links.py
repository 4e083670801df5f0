"""The netlink adapter against a real kernel: idempotence, conflicts, read-back.

Every object lives in namespaces named ``ztdp<4 hex>-*``, removed at the end
even when a test fails (deleting a namespace deletes the links inside it).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from conftest import require_root_tools
from ztos.dataplane import links
from ztos.errors import Conflict, NotFound

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> Iterator[str]:
    require_root_tools("ip")
    name = f"ztdp{secrets.token_hex(2)}-"
    try:
        yield name
    finally:
        for netns in links.list_netns():
            if netns.startswith(name):
                links.delete_netns(netns)


def test_namespaces_and_veth_are_idempotent(prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    links.create_netns(a)
    links.create_netns(a)
    links.create_netns(b)
    for _ in range(2):
        links.create_veth(prefix + "va", prefix + "vb", netns=a, peer_netns=b, mtu=9000)
    va, vb = links.get_link(prefix + "va", a), links.get_link(prefix + "vb", b)
    assert va is not None and vb is not None
    assert (va.kind, va.mtu, vb.kind, vb.mtu) == ("veth", 9000, "veth", 9000)
    with pytest.raises(Conflict, match="not paired"):
        links.create_veth(prefix + "va", prefix + "vx", netns=a, peer_netns=b)
    assert links.delete_link(prefix + "va", a) is True
    assert links.delete_link(prefix + "va", a) is False
    assert links.get_link(prefix + "vb", b) is None, "deleting one end removes the pair"
    assert links.delete_netns(b) is True
    assert links.delete_netns(b) is False


def test_bridge_addresses_routes(prefix: str) -> None:
    ns = prefix + "a"
    links.create_netns(ns)
    links.create_bridge(prefix + "br", ns)
    links.create_bridge(prefix + "br", ns)
    with pytest.raises(Conflict, match="exists as bridge"):
        links.create_veth(prefix + "br", prefix + "x", netns=ns, peer_netns=ns)
    links.create_veth(prefix + "d0", prefix + "d1", netns=ns, peer_netns=ns)
    links.set_master(prefix + "d1", prefix + "br", ns)
    links.set_link(prefix + "d1", ns, up=True)
    links.set_link(prefix + "d0", ns, up=True, mtu=1400)
    for _ in range(2):
        links.add_address(prefix + "d0", "2001:db8::1/64", ns)
        links.add_address(prefix + "d0", "10.9.0.1/24", ns)
        links.add_route(prefix + "d0", "fd00:1::/64", ns)
        links.add_route(prefix + "d0", "10.50.0.0/16", ns)
    assert links.get_addresses(prefix + "d0", ns) == ("10.9.0.1/24", "2001:db8::1/64")
    subprocess.run(["ip", "-n", ns, "route", "add", "fd00:9::/64", "dev", prefix + "d0"], check=True)
    assert links.get_routes(prefix + "d0", ns) == ("10.50.0.0/16", "fd00:1::/64"), "only ZTOS routes"
    listed = {(a.ifname, a.address, a.mtu) for a in links.all_addresses(ns)}
    assert (prefix + "d0", "2001:db8::1", 1400) in listed
    for _ in range(2):
        links.remove_route(prefix + "d0", "fd00:1::/64", ns)
        links.remove_address(prefix + "d0", "2001:db8::1/64", ns)
    assert links.get_routes(prefix + "d0", ns) == ("10.50.0.0/16",)
    assert links.get_addresses(prefix + "d0", ns) == ("10.9.0.1/24",)
    assert links.route_device("10.50.1.1", ns).name == prefix + "d0"
    shown = subprocess.run(
        ["ip", "-n", ns, "-j", "link", "show", prefix + "d1"], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)[0]["master"] == prefix + "br"


def test_sysctl_feature_probe_and_missing_namespace(prefix: str) -> None:
    ns = prefix + "a"
    links.create_netns(ns)
    links.set_sysctl("net.ipv6.conf.all.forwarding", 1, ns)
    assert links.get_sysctl("net.ipv6.conf.all.forwarding", ns) == "1"
    assert links.kind_supported("bridge", ns) is True
    assert links.kind_supported("no-such-kind", ns) is False
    with pytest.raises(NotFound, match="does not exist"):
        links.get_link("lo", prefix + "missing")
    assert not links.netns_exists(prefix + "missing"), "a lookup must never create a namespace"
