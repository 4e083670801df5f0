"""BIND rendering is pure: the same policy table becomes update-policy grants."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.rdatatype

from ztos.discovery import TransferAcl, ZoneWide, network_policy, new_zone
from ztos.discovery import names as n
from ztos.discovery.bind import BindConfig, render_named_conf, render_update_policy, render_zone_file

ZONE = n.zone_origin("lab")
POLICY = network_policy(ZONE, ["h1", "h2"])
SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
KEYS = {n.host_key_name("h1", ZONE): SECRET, n.controller_key_name(ZONE): SECRET}


def config(**overrides: object) -> BindConfig:
    base: dict[str, object] = {
        "state_dir": Path("/srv/dns"),
        "zone": ZONE,
        "policy": POLICY,
        "keys": KEYS,
        "transfer": TransferAcl(keys=frozenset({n.controller_key_name(ZONE)})),
        "port": 5353,
    }
    return BindConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_named_conf_is_confined_to_the_state_dir_and_has_no_rndc() -> None:
    text = render_named_conf(config())
    for line in [
        'directory "/srv/dns";',
        'pid-file "/srv/dns/named.pid";',
        'session-keyfile "/srv/dns/session.key";',
        'managed-keys-directory "/srv/dns";',
        "listen-on port 5353 { 127.0.0.1; };",
        "listen-on-v6 { none; };",
        "recursion no;",
        "notify no;",
        "controls { };",
        'zone "lab.ztos.internal." {',
        "type primary;",
        'file "/srv/dns/zone.db";',
        'allow-transfer { key "_ztos-controller.lab.ztos.internal."; };',
    ]:
        assert line in text, line


def test_grants_come_from_the_policy_table_for_known_keys_only() -> None:
    text = render_update_policy(POLICY, KEYS)
    assert 'grant "_ztos-controller.lab.ztos.internal." zonesub ANY;' in text
    assert 'grant "h1.lab.ztos.internal." subdomain h1.lab.ztos.internal. A AAAA PTR SRV TXT;' in text
    assert "h2.lab" not in text  # h2 has a grant but BIND has no key for it yet
    assert render_update_policy(POLICY, {}) == "allow-update { none; };"


def test_type_limited_zone_grant_and_ipv6_listener() -> None:
    key = n.controller_key_name(ZONE)
    policy = POLICY.with_key(key, [ZoneWide(frozenset({dns.rdatatype.RdataType.PTR}))])
    assert f'grant "{key}" zonesub PTR;' in render_update_policy(policy, [key])
    text = render_named_conf(config(listen="::1"))
    assert "listen-on { none; };" in text and "listen-on-v6 port 5353 { ::1; };" in text
    acl = TransferAcl(networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert "allow-transfer { 10.0.0.0/8; };" in render_named_conf(config(transfer=acl))
    assert "allow-transfer { none; };" in render_named_conf(config(transfer=TransferAcl()))


def test_keys_are_rendered_as_tsig_keygen_would() -> None:
    text = render_named_conf(config())
    assert f'key "h1.lab.ztos.internal." {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};' in text


def test_zone_file_is_the_zone_texts() -> None:
    zone = new_zone(ZONE, [ipaddress.ip_address("127.0.0.1")])
    text = render_zone_file(zone)
    assert text.splitlines() == zone.to_texts() and text.endswith("\n")
    assert "ns.lab.ztos.internal. 3600 IN A 127.0.0.1" in text  # BIND needs the NS target's address
