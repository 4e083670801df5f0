"""Naming scheme, per-key policy, DNS64 address format and TSIG keys, as tables."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdatatype
import pytest

from ztos.discovery import Dns64, Policy, SubdomainOf, ZoneWide, network_policy, new_tsig_key
from ztos.discovery import names as n
from ztos.discovery.dns64 import embed_ipv4
from ztos.discovery.keys import decode_secret, keyring
from ztos.errors import InvalidInput

ZONE = n.zone_origin("lab")
T = dns.rdatatype.RdataType


def test_names_follow_the_documented_scheme() -> None:
    assert ZONE.to_text() == "lab.ztos.internal."
    assert n.zone_origin("lab", "corp.example.").to_text() == "lab.corp.example."
    assert n.host_name("h1", ZONE).to_text() == "h1.lab.ztos.internal."
    assert n.service_name("wireguard", "udp", "h1", ZONE).to_text() == "_wireguard._udp.h1.lab.ztos.internal."
    assert n.browse_name("wireguard", "udp", ZONE).to_text() == "_wireguard._udp.lab.ztos.internal."
    assert n.enumeration_name("h1", ZONE).to_text() == "_services._dns-sd._udp.h1.lab.ztos.internal."
    assert n.controller_srv_name(ZONE).to_text() == "_ztos-api._tcp.lab.ztos.internal."
    assert n.host_key_name("h1", ZONE) == n.host_name("h1", ZONE)
    assert n.controller_key_name(ZONE).to_text() == "_ztos-controller.lab.ztos.internal."


@pytest.mark.parametrize(
    ("owner", "host"),
    [("h1", "h1"), ("_bgp._tcp.h1", "h1"), ("_wireguard._udp", None), ("@", None), ("x.example.", None)],
)
def test_host_of(owner: str, host: str | None) -> None:
    assert n.host_of(dns.name.from_text(owner, ZONE), ZONE) == host


@pytest.mark.parametrize(
    "bad",
    [
        lambda: n.host_name("H1", ZONE),
        lambda: n.host_name("-h1", ZONE),
        lambda: n.host_name("h" * 64, ZONE),
        lambda: n.host_name("a.b", ZONE),
        lambda: n.host_name("ns", ZONE),
        lambda: n.service_name("way-too-long-service", "tcp", "h1", ZONE),
        lambda: n.service_name("a--b", "tcp", "h1", ZONE),
        lambda: n.service_name("web", "sctp", "h1", ZONE),
        lambda: n.zone_origin("Bad Net"),
        lambda: n.as_name("a..b"),
    ],
)
def test_bad_names_are_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        bad()  # type: ignore[operator]


POLICY = network_policy(ZONE, ["h1", "h2"])
H1 = "h1.lab.ztos.internal."
CTL = "_ztos-controller.lab.ztos.internal."


@pytest.mark.parametrize(
    ("key", "owner", "rdtype", "allowed"),
    [
        (H1, "h1", None, True),
        (H1, "h1", T.AAAA, True),
        (H1, "_wireguard._udp.h1", T.SRV, True),
        (H1, "_services._dns-sd._udp.h1", T.PTR, True),
        (H1, "deep.er.h1", T.TXT, True),
        (H1, "h1", T.NS, False),
        (H1, "h1", T.CNAME, False),
        (H1, "h2", T.AAAA, False),
        (H1, "h10", T.AAAA, False),
        (H1, "@", T.A, False),
        (H1, "_wireguard._udp", T.PTR, False),
        (CTL, "_wireguard._udp", T.PTR, True),
        (CTL, "h2", T.AAAA, True),
        (CTL, "@", T.NS, True),
        (CTL, "example.com.", T.A, False),  # outside the zone, whatever the grant
        ("unknown.", "h1", T.A, False),
        (None, "h1", T.A, False),
    ],
)
def test_policy_allowed(key: str | None, owner: str, rdtype: T | None, allowed: bool) -> None:
    assert POLICY.allowed(key, dns.name.from_text(owner, ZONE), rdtype) is allowed


def test_policy_is_a_value() -> None:
    key = n.as_name("h3.lab.ztos.internal.")
    added = POLICY.with_key(key, [SubdomainOf(n.host_name("h3", ZONE))])
    assert added.allowed(key, n.host_name("h3", ZONE), T.A) and not POLICY.allowed(
        key, n.host_name("h3", ZONE)
    )
    assert not added.without_key(key).allowed(key, n.host_name("h3", ZONE))
    limited = Policy(ZONE, {key: (ZoneWide(frozenset({T.TXT})),)})
    assert limited.allowed(key, "anything", T.TXT) and not limited.allowed(key, "anything", T.A)


# RFC 6052 section 2.4 examples for 192.0.2.33.
@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
        ("64:ff9b::/96", "64:ff9b::c000:221"),
    ],
)
def test_rfc6052_embedding(prefix: str, expected: str) -> None:
    got = embed_ipv4(ipaddress.IPv6Network(prefix), ipaddress.IPv4Address("192.0.2.33"))
    assert got == ipaddress.IPv6Address(expected)


@pytest.mark.parametrize("prefix", ["64:ff9b::/80", "2001:d00::/24", "2001:db8:0:0:ff00::/96"])
def test_bad_nat64_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        Dns64(ipaddress.IPv6Network(prefix))


def test_new_tsig_keys_are_random_256_bit_hmac_sha256() -> None:
    name, secret = new_tsig_key("h1.lab.ztos.internal")
    assert name == "h1.lab.ztos.internal."
    assert len(decode_secret(secret)) == 32 and new_tsig_key(name)[1] != secret
    ring = keyring({name: secret})
    assert ring[n.as_name(name)].algorithm == dns.name.from_text("hmac-sha256")


@pytest.mark.parametrize("secret", ["not base64!", "c2hvcnQ="])
def test_bad_secrets_are_invalid_input(secret: str) -> None:
    with pytest.raises(InvalidInput):
        decode_secret(secret)
