"""Pure zone behaviour as tables: answers (NXDOMAIN vs NODATA, DNS64) and RFC 2136 updates."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.update
import pytest

from ztos.discovery import Dns64, Zone, answer, apply_update, network_policy, new_zone, records
from ztos.discovery import names as n
from ztos.discovery.policy import Policy, SubdomainOf, ZoneWide
from ztos.errors import InvalidInput

Rcode = dns.rcode.Rcode
ZONE = n.zone_origin("lab")
H1 = n.host_key_name("h1", ZONE)
H2 = n.host_key_name("h2", ZONE)
CTL = n.controller_key_name(ZONE)
POLICY = network_policy(ZONE, ["h1", "h2"])


def base() -> Zone:
    zone = new_zone(ZONE, [ipaddress.ip_address("192.0.2.53")])
    texts = [
        *zone.to_texts(),
        f"h1.{ZONE} 60 IN AAAA fd00::1",
        f"h1.{ZONE} 60 IN A 10.9.0.1",
        f"_wireguard._udp.h1.{ZONE} 60 IN SRV 0 0 51820 h1.{ZONE}",
        f'_wireguard._udp.h1.{ZONE} 60 IN TXT "pk=x"',
        f"v4only.{ZONE} 300 IN A 192.0.2.7",
        f"_wireguard._udp.{ZONE} 60 IN PTR _wireguard._udp.h1.{ZONE}",
    ]
    return Zone.from_texts(ZONE, texts)


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ZONE)


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answers", "aa"),
    [
        ("h1", "AAAA", Rcode.NOERROR, ["fd00::1"], True),
        ("h1", "A", Rcode.NOERROR, ["10.9.0.1"], True),
        ("h1", "TXT", Rcode.NOERROR, [], True),  # NODATA
        ("_udp.h1", "SRV", Rcode.NOERROR, [], True),  # empty non-terminal: NODATA, not NXDOMAIN
        ("nope", "A", Rcode.NXDOMAIN, [], True),
        ("x.nope", "A", Rcode.NXDOMAIN, [], True),
        ("v4only", "AAAA", Rcode.NOERROR, [], True),  # DNS64 off
        ("@", "NS", Rcode.NOERROR, [f"ns.{ZONE}"], True),
        ("example.com.", "A", Rcode.REFUSED, [], False),
        ("ztos.internal.", "SOA", Rcode.REFUSED, [], False),  # parent of the zone: not ours
    ],
)
def test_answer(qname: str, qtype: str, rcode: Rcode, answers: list[str], aa: bool) -> None:
    result = answer(base(), name(qname), dns.rdatatype.from_text(qtype))
    assert result.rcode == rcode
    assert [rd.to_text() for rrset in result.answer for rd in rrset] == answers
    assert result.authoritative == aa


def test_negative_answers_carry_the_soa_with_the_negative_ttl() -> None:
    result = answer(base(), name("nope"), dns.rdatatype.A)
    (soa,) = result.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 60


def test_any_returns_every_rrset_at_the_name() -> None:
    result = answer(base(), name("h1"), dns.rdatatype.ANY)
    assert {rrset.rdtype for rrset in result.answer} == {dns.rdatatype.A, dns.rdatatype.AAAA}


def test_srv_and_ptr_answers_bring_their_targets_as_additional_data() -> None:
    srv = answer(base(), name("_wireguard._udp.h1"), dns.rdatatype.SRV)
    assert {(r.name, r.rdtype) for r in srv.additional} == {
        (name("h1"), dns.rdatatype.A),
        (name("h1"), dns.rdatatype.AAAA),
    }
    ptr = answer(base(), name("_wireguard._udp"), dns.rdatatype.PTR)
    assert {r.rdtype for r in ptr.additional} == {
        dns.rdatatype.SRV,
        dns.rdatatype.TXT,
        dns.rdatatype.A,
        dns.rdatatype.AAAA,
    }


@pytest.mark.parametrize(
    ("prefix", "qname", "expected"),
    [
        ("64:ff9b::/96", "v4only", ["64:ff9b::c000:207"]),
        ("fd00:64::/96", "v4only", ["fd00:64::c000:207"]),
        ("2001:db8:100::/40", "v4only", ["2001:db8:1c0:2:7::"]),
        ("64:ff9b::/96", "h1", ["fd00::1"]),  # real AAAA wins
        ("64:ff9b::/96", "nope", []),
    ],
)
def test_dns64_synthesis(prefix: str, qname: str, expected: list[str]) -> None:
    dns64 = Dns64(ipaddress.IPv6Network(prefix))
    result = answer(base(), name(qname), dns.rdatatype.AAAA, dns64)
    assert [rd.to_text() for rrset in result.answer for rd in rrset] == expected


def test_dns64_ttl_is_capped_by_the_soa_minimum() -> None:
    result = answer(base(), name("v4only"), dns.rdatatype.AAAA, Dns64())
    assert result.answer[0].ttl == 60  # A has 300, SOA minimum 60


# --- updates ------------------------------------------------------------------------------------


def update(*steps: tuple[str, ...]) -> dns.update.UpdateMessage:
    """Build an update from (verb, name, args...) steps, e.g. ("add", "h1", "60", "A", "10.0.0.1")."""
    message = dns.update.UpdateMessage(ZONE)
    for verb, owner, *args in steps:
        getattr(message, verb)(name(owner), *args)
    return wire_round_trip(message)


def wire_round_trip(message: dns.update.UpdateMessage) -> dns.update.UpdateMessage:
    """What a server sees: the message as parsed from the wire."""
    parsed = dns.message.from_wire(message.to_wire())
    assert isinstance(parsed, dns.update.UpdateMessage)
    return parsed


@pytest.mark.parametrize(
    ("steps", "key", "rcode"),
    [
        ([("replace", "h1", "60", "AAAA", "fd00::9")], H1, Rcode.NOERROR),
        ([("replace", "_x._tcp.h1", "60", "SRV", f"0 0 1 h1.{ZONE}")], H1, Rcode.NOERROR),
        ([("replace", "h2", "60", "AAAA", "fd00::9")], H1, Rcode.REFUSED),  # another host's name
        ([("replace", "h1x", "60", "AAAA", "fd00::9")], H1, Rcode.REFUSED),  # prefix is not a subdomain
        ([("add", "h1", "60", "NS", f"evil.{ZONE}")], H1, Rcode.REFUSED),  # type not granted
        ([("add", "@", "60", "A", "10.0.0.1")], H1, Rcode.REFUSED),
        ([("replace", "h2", "60", "AAAA", "fd00::9")], CTL, Rcode.NOERROR),
        ([("replace", "h1", "60", "AAAA", "fd00::9")], None, Rcode.REFUSED),  # unsigned
        ([("replace", "h1", "60", "AAAA", "fd00::9")], n.as_name("stranger."), Rcode.REFUSED),
        ([("add", "sub", "60", "NS", f"ns.{ZONE}")], CTL, Rcode.REFUSED),  # no delegations
        ([("present", "h1", "AAAA"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.NOERROR),
        ([("present", "h1", "TXT"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.NXRRSET),
        ([("present", "nope"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.NXDOMAIN),
        ([("absent", "h1"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.YXDOMAIN),
        ([("absent", "h1", "A"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.YXRRSET),
        (
            [("absent", "_udp.h1"), ("replace", "h1", "60", "A", "10.0.0.2")],
            H1,
            Rcode.NOERROR,
        ),  # ENT not in use
        ([("present", "h1", "A", "10.9.0.1"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.NOERROR),
        ([("present", "h1", "A", "10.9.0.2"), ("replace", "h1", "60", "A", "10.0.0.2")], H1, Rcode.NXRRSET),
        ([("add", "x.example.com.", "60", "A", "10.0.0.2")], CTL, Rcode.NOTZONE),
    ],
)
def test_update_rcodes(steps: list[tuple[str, ...]], key: dns.name.Name | None, rcode: Rcode) -> None:
    zone = base()
    outcome = apply_update(zone, update(*steps), key, POLICY)
    assert outcome.rcode == rcode, outcome.reason
    if rcode != Rcode.NOERROR:
        assert outcome.zone is zone and not outcome.changed


def test_update_for_another_zone_is_notauth() -> None:
    message = dns.update.UpdateMessage("other.ztos.internal.")
    message.replace("h1", 60, "A", "10.0.0.1")
    assert apply_update(base(), message, CTL, POLICY).rcode == Rcode.NOTAUTH


def test_update_is_all_or_nothing() -> None:
    zone = base()
    message = update(("replace", "h1", "60", "AAAA", "fd00::9"), ("replace", "h2", "60", "AAAA", "fd00::8"))
    outcome = apply_update(zone, message, H1, POLICY)
    assert outcome.rcode == Rcode.REFUSED
    assert outcome.zone.get(name("h1"), dns.rdatatype.AAAA)[0].to_text() == "fd00::1"  # type: ignore[index]
    assert outcome.zone.serial == zone.serial


def test_serial_bumps_once_per_changing_update_and_not_for_no_ops() -> None:
    zone = base()
    changed = apply_update(
        zone, update(("replace", "h1", "60", "AAAA", "fd00::9"), ("delete", "h1", "A")), H1, POLICY
    )
    assert changed.changed and changed.zone.serial == zone.serial + 1
    same = apply_update(changed.zone, update(("replace", "h1", "60", "AAAA", "fd00::9")), H1, POLICY)
    assert same.rcode == Rcode.NOERROR and not same.changed and same.zone.serial == changed.zone.serial


def test_ttl_change_alone_is_a_change() -> None:
    outcome = apply_update(base(), update(("add", "h1", "120", "AAAA", "fd00::1")), H1, POLICY)
    assert outcome.changed and outcome.zone.get(name("h1"), dns.rdatatype.AAAA).ttl == 120  # type: ignore[union-attr]


def test_apex_soa_and_ns_survive_deletes() -> None:
    zone = base()
    outcome = apply_update(
        zone, update(("delete", "@"), ("delete", "@", "NS"), ("delete", "@", "SOA")), CTL, POLICY
    )
    assert outcome.zone.get(ZONE, dns.rdatatype.SOA) is not None
    assert outcome.zone.get(ZONE, dns.rdatatype.NS) is not None
    last_ns = apply_update(zone, update(("delete", "@", "NS", f"ns.{ZONE}")), CTL, POLICY)
    assert last_ns.zone.get(ZONE, dns.rdatatype.NS) is not None


def test_soa_update_needs_a_newer_serial() -> None:
    zone = base()
    older = f"ns.{ZONE} hostmaster.{ZONE} 0 3600 600 86400 60"
    newer = f"ns.{ZONE} hostmaster.{ZONE} 1000 3600 600 86400 30"
    assert not apply_update(zone, update(("replace", "@", "3600", "SOA", older)), CTL, POLICY).changed
    outcome = apply_update(zone, update(("replace", "@", "3600", "SOA", newer)), CTL, POLICY)
    assert outcome.zone.serial == 1000 and outcome.zone.soa.minimum == 30


def test_cname_and_other_data_never_coexist() -> None:
    zone = base()
    ignored = apply_update(zone, update(("add", "h1", "60", "CNAME", f"v4only.{ZONE}")), CTL, POLICY)
    assert not ignored.changed
    added = apply_update(zone, update(("add", "alias", "60", "CNAME", f"v4only.{ZONE}")), CTL, POLICY)
    blocked = apply_update(added.zone, update(("add", "alias", "60", "A", "10.0.0.1")), CTL, POLICY)
    assert added.changed and not blocked.changed


def test_delete_name_needs_every_present_type_granted() -> None:
    policy = Policy(
        ZONE, {H1: (SubdomainOf(name("h1"), frozenset({dns.rdatatype.AAAA})),), CTL: (ZoneWide(),)}
    )
    outcome = apply_update(base(), update(("delete", "h1")), H1, policy)
    assert outcome.rcode == Rcode.REFUSED  # h1 also has an A record the key may not touch


def test_malformed_update_rr_is_formerr() -> None:
    message = update(("replace", "h1", "60", "AAAA", "fd00::9"))
    message.update[0].rdtype = dns.rdatatype.AXFR  # a meta type cannot be added
    assert apply_update(base(), message, H1, POLICY).rcode == Rcode.FORMERR


# --- the records we send, applied to the pure zone ----------------------------------------------


def test_records_round_trip_through_the_pure_zone() -> None:
    zone = base()
    steps = [
        (records.replace_host(ZONE, "h2", "fd00::2", "10.9.0.2"), H2),
        (records.register_service(ZONE, "h2", "wireguard", "udp", 51820, {"pk": "abc"}), H2),
        (records.register_service(ZONE, "h2", "web", "tcp", 443), H2),
        (records.publish_browse(ZONE, "wireguard", "udp", "h2"), CTL),
    ]
    for message, key in steps:
        outcome = apply_update(zone, message, key, POLICY)
        assert outcome.rcode == Rcode.NOERROR, outcome.reason
        zone = outcome.zone
    srv = answer(zone, name("_web._tcp.h2"), dns.rdatatype.SRV).answer[0]
    assert srv[0].to_text() == f"0 0 443 h2.{ZONE}"
    txt = answer(zone, name("_web._tcp.h2"), dns.rdatatype.TXT).answer[0]
    assert txt[0].to_text() == '""'  # RFC 6763: an empty TXT is one empty string
    registered = [rd.target for rd in zone.get(n.enumeration_name("h2", ZONE), dns.rdatatype.PTR)]  # type: ignore[union-attr]
    removal = records.delete_names(ZONE, records.host_names(ZONE, "h2", registered))
    zone = apply_update(zone, removal, H2, POLICY).zone
    assert not [owner for owner, _ in zone.rrsets if owner.is_subdomain(name("h2"))]


def test_replace_host_with_none_removes_that_family() -> None:
    zone = apply_update(base(), records.replace_host(ZONE, "h1", None, "10.9.0.5"), H1, POLICY).zone
    assert zone.get(name("h1"), dns.rdatatype.AAAA) is None
    assert zone.get(name("h1"), dns.rdatatype.A)[0].to_text() == "10.9.0.5"  # type: ignore[index]


@pytest.mark.parametrize(
    "build",
    [
        lambda: records.replace_host(ZONE, "h1", "10.0.0.1", None),  # v4 given as v6
        lambda: records.replace_host(ZONE, "h1", None, "not-an-ip"),
        lambda: records.replace_host(ZONE, "H1", None, None),
        lambda: records.replace_host(ZONE, "ns", None, None),  # reserved
        lambda: records.register_service(ZONE, "h1", "_wireguard", "udp", 1),
        lambda: records.register_service(ZONE, "h1", "wireguard", "sctp", 1),
        lambda: records.register_service(ZONE, "h1", "wireguard", "udp", 70000),
        lambda: records.register_service(ZONE, "h1", "wireguard", "udp", 1, ["x" * 256]),
    ],
)
def test_bad_record_input_is_invalid_input(build: object) -> None:
    with pytest.raises(InvalidInput):
        build()  # type: ignore[operator]


def test_zone_texts_round_trip_and_reject_garbage() -> None:
    zone = base()
    again = Zone.from_texts(ZONE, zone.to_texts())
    assert again.to_texts() == zone.to_texts() and again.to_texts()[0].split()[3] == "SOA"
    with pytest.raises(InvalidInput):
        Zone.from_texts(ZONE, ["h1 60 IN A 10.0.0.1"])  # no SOA
    with pytest.raises(InvalidInput):
        Zone.from_texts(ZONE, [*zone.to_texts(), "h1 60 IN A not-an-address"])
