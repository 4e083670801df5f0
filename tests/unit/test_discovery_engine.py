"""The embedded server's logic with bytes in and bytes out: TSIG, replay, policy, transfers, robustness."""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from ztos.discovery import (
    DnsEngine,
    EngineSettings,
    TransferAcl,
    Zone,
    host_grants,
    network_policy,
    new_tsig_key,
    new_zone,
    records,
)
from ztos.discovery import names as n
from ztos.discovery.keys import keyring, sign_at, tsig_key

Rcode = dns.rcode.Rcode
ZONE = n.zone_origin("lab")
H1 = new_tsig_key(n.host_key_name("h1", ZONE))
H2 = new_tsig_key(n.host_key_name("h2", ZONE))
CTL = new_tsig_key(n.controller_key_name(ZONE))


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def make_engine(
    zone: Zone | None = None, persist: Callable[[Zone], None] | None = None, **settings: object
) -> tuple[DnsEngine, Clock]:
    clock = Clock()
    acl = TransferAcl(keys=frozenset({n.as_name(CTL[0])}), networks=(ipaddress.ip_network("192.0.2.0/24"),))
    engine = DnsEngine(
        zone or new_zone(ZONE),
        keyring(dict([H1, H2, CTL])),
        network_policy(ZONE, ["h1", "h2"]),
        EngineSettings(transfer=acl, **settings),  # type: ignore[arg-type]
        clock=clock,
        persist=persist,
    )
    return engine, clock


def key(pair: tuple[str, str]) -> dns.tsig.Key:
    return tsig_key(*pair)


def host_update(host: str = "h1", address: str = "fd00::1") -> dns.update.UpdateMessage:
    return records.replace_host(ZONE, host, address, None)


def signed(message: dns.message.Message, pair: tuple[str, str], age: float = 0) -> bytes:
    return sign_at(message, key(pair), int(time.time() - age))


def one(engine: DnsEngine, wire: bytes, client: str = "127.0.0.1", tcp: bool = False) -> dns.message.Message:
    (out,) = engine.handle(wire, client, tcp)
    return dns.message.from_wire(out, keyring=False)


def aaaa(engine: DnsEngine, host: str) -> list[str]:
    rrset = engine.zone.get(n.host_name(host, ZONE), dns.rdatatype.AAAA)
    return [] if rrset is None else [rd.to_text() for rd in rrset]


def test_signed_update_applies_and_the_response_is_signed_for_the_request() -> None:
    engine, _ = make_engine()
    wire = signed(host_update(), H1)
    (out,) = engine.handle(wire, "127.0.0.1", tcp=True)
    request_mac = dns.message.from_wire(wire, keyring=False).mac
    response = dns.message.from_wire(out, keyring={key(H1).name: key(H1)}, request_mac=request_mac)
    assert response.rcode() == Rcode.NOERROR and response.had_tsig
    assert aaaa(engine, "h1") == ["fd00::1"]


@pytest.mark.parametrize(
    ("make_wire", "rcode", "tsig_error"),
    [
        (lambda: host_update().to_wire(), Rcode.REFUSED, None),  # unsigned
        (lambda: signed(host_update(), new_tsig_key("stranger.")), Rcode.NOTAUTH, Rcode.BADKEY),
        (lambda: signed(host_update(), (H1[0], new_tsig_key("x.")[1])), Rcode.NOTAUTH, Rcode.BADSIG),
        (lambda: signed(host_update(), H1, age=3600), Rcode.NOTAUTH, Rcode.BADTIME),
        (lambda: signed(host_update(), H1, age=-3600), Rcode.NOTAUTH, Rcode.BADTIME),
        (lambda: signed(host_update("h2"), H1), Rcode.REFUSED, Rcode.NOERROR),  # policy
    ],
)
def test_refused_updates_change_nothing(
    make_wire: Callable[[], bytes], rcode: Rcode, tsig_error: Rcode | None
) -> None:
    engine, _ = make_engine()
    before = engine.zone
    response = one(engine, make_wire())
    assert response.rcode() == rcode
    assert response.tsig_error == tsig_error
    assert engine.zone is before


def test_badkey_and_badsig_answers_carry_an_empty_mac_and_badtime_a_signed_one() -> None:
    engine, _ = make_engine()
    badsig = one(engine, signed(host_update(), (H1[0], new_tsig_key("x.")[1])))
    assert badsig.mac == b""
    badtime = one(engine, signed(host_update(), H1, age=3600))
    assert badtime.mac != b"" and len(badtime.tsig[0].other) == 6  # type: ignore[index]
    with pytest.raises(dns.tsig.PeerBadTime):  # what a dnspython client sees
        dns.message.from_wire(
            engine.handle(signed(host_update(), H1, age=3600), "127.0.0.1")[0],
            keyring=key(H1),
            request_mac=b"x",
        )


def test_server_fudge_is_enforced_even_if_the_request_claims_a_larger_one() -> None:
    engine, _ = make_engine(fudge=10)
    wire = sign_at(host_update(), key(H1), int(time.time() - 60), fudge=3600)
    assert one(engine, wire).tsig_error == Rcode.BADTIME
    assert one(engine, signed(host_update(), H1, age=5)).rcode() == Rcode.NOERROR


def test_an_identical_resent_update_is_refused_as_a_replay() -> None:
    engine, clock = make_engine()
    wire = signed(host_update(), H1)
    assert one(engine, wire).rcode() == Rcode.NOERROR
    serial = engine.zone.serial
    assert one(engine, wire).rcode() == Rcode.REFUSED
    assert engine.zone.serial == serial
    clock.offset = 2 * 300 + 1  # after the cache forgets it, the time check refuses it
    assert one(engine, wire).tsig_error == Rcode.BADTIME


def test_replay_cache_forgets_old_entries() -> None:
    engine, clock = make_engine()
    for i in range(50):
        one(engine, signed(host_update(address=f"fd00::{i + 1:x}"), H1))
    assert len(engine.replays._seen) == 50
    clock.offset = 601
    engine.replays.check_and_add(n.as_name(H1[0]), b"new", clock())
    assert len(engine.replays._seen) == 1


def test_removed_key_is_badkey_and_added_key_works() -> None:
    engine, _ = make_engine()
    engine.remove_key(H1[0])
    assert one(engine, signed(host_update(), H1)).tsig_error == Rcode.BADKEY
    h3 = new_tsig_key(n.host_key_name("h3", ZONE))
    engine.add_key(*h3, host_grants("h3", ZONE))
    assert one(engine, signed(host_update("h3"), h3)).rcode() == Rcode.NOERROR


def test_a_failed_save_is_servfail_and_the_zone_is_unchanged() -> None:
    saved: list[int] = []

    def persist(zone: Zone) -> None:
        if saved:
            raise OSError("disk full")
        saved.append(zone.serial)

    engine, _ = make_engine(persist=persist)
    assert one(engine, signed(host_update(address="fd00::1"), H1)).rcode() == Rcode.NOERROR
    assert one(engine, signed(host_update(address="fd00::2"), H1)).rcode() == Rcode.SERVFAIL
    assert aaaa(engine, "h1") == ["fd00::1"] and saved == [engine.zone.serial]


@pytest.mark.parametrize(
    ("wire", "expect"),
    [
        (b"", None),
        (b"\x12\x34\x00", None),
        (b"\x12\x34" + b"\x00" * 9, None),  # 11 bytes: no header
        (b"\x12\x34\x01\x00" + b"\x00\x01" + b"\x00" * 6, Rcode.FORMERR),  # QDCOUNT=1, no question
        (b"\x12\x34\x81\x00" + b"\x00\x01" + b"\x00" * 6, None),  # a response: never answered
        (b"\x12\x34\x00\x00" + b"\x00" * 8 + b"trailing", Rcode.FORMERR),
    ],
)
def test_malformed_requests(wire: bytes, expect: Rcode | None) -> None:
    engine, _ = make_engine()
    out = engine.handle(wire, "127.0.0.1")
    if expect is None:
        assert out == []
    else:
        (reply,) = out
        ident, flags = struct.unpack("!HH", reply[:4])
        assert ident == 0x1234 and flags & dns.flags.QR and flags & 0xF == expect


def test_notify_is_not_implemented_and_two_questions_are_formerr() -> None:
    engine, _ = make_engine()
    notify = dns.message.make_query(ZONE, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert one(engine, notify.to_wire()).rcode() == Rcode.NOTIMP
    double = dns.message.make_query(ZONE, "SOA")
    double.question.append(double.question[0])
    assert one(engine, double.to_wire()).rcode() == Rcode.FORMERR
    chaos = dns.message.make_query("version.bind.", "TXT", "CH")
    assert one(engine, chaos.to_wire()).rcode() == Rcode.REFUSED


def test_queries_are_authoritative() -> None:
    engine, _ = make_engine()
    one(engine, signed(host_update(), H1))
    response = one(engine, dns.message.make_query(n.host_name("h1", ZONE), "AAAA").to_wire())
    assert response.flags & dns.flags.AA and response.answer[0][0].to_text() == "fd00::1"
    missing = one(engine, dns.message.make_query(n.host_name("h9", ZONE), "AAAA").to_wire())
    assert missing.rcode() == Rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA


def big_zone(hosts: int) -> Zone:
    zone = new_zone(ZONE)
    lines = [f"h{i}.{ZONE} 60 IN AAAA fd00::{i + 1:x}" for i in range(hosts)]
    return Zone.from_texts(ZONE, zone.to_texts() + lines)


def axfr(key_pair: tuple[str, str] | None) -> tuple[bytes, bytes]:
    query = dns.message.make_query(ZONE, "AXFR")
    if key_pair is None:
        return query.to_wire(), b""
    wire = signed(query, key_pair)
    return wire, dns.message.from_wire(wire, keyring=False).mac


def test_axfr_with_the_controller_key_is_signed_and_chained_across_messages() -> None:
    engine, _ = make_engine(big_zone(500))
    wire, mac = axfr(CTL)
    messages = engine.handle(wire, "127.0.0.1", tcp=True)
    assert len(messages) > 1
    ctx, count = None, 0
    for i, out in enumerate(messages):
        ring = {key(CTL).name: key(CTL)}
        message = dns.message.from_wire(
            out, keyring=ring, request_mac=mac, tsig_ctx=ctx, multi=True, xfr=True
        )
        ctx = message.tsig_ctx
        count += sum(len(rrset) for rrset in message.answer)
        assert message.rcode() == Rcode.NOERROR and bool(message.question) == (i == 0)
    assert count == len(engine.zone.to_texts()) + 1  # SOA at both ends


@pytest.mark.parametrize(
    ("key_pair", "client", "tcp", "allowed"),
    [
        (CTL, "127.0.0.1", True, True),
        (None, "192.0.2.9", True, True),  # address list
        (None, "127.0.0.1", True, False),
        (H1, "127.0.0.1", True, False),  # host keys may not list the zone
        (CTL, "127.0.0.1", False, False),  # never over UDP
    ],
)
def test_axfr_access(key_pair: tuple[str, str] | None, client: str, tcp: bool, allowed: bool) -> None:
    engine, _ = make_engine()
    wire, _ = axfr(key_pair)
    first = dns.message.from_wire(engine.handle(wire, client, tcp)[0], keyring=False)
    assert (first.rcode() == Rcode.NOERROR) is allowed


def test_large_udp_answers_are_truncated_and_complete_over_tcp() -> None:
    zone = new_zone(ZONE)
    lines = [f'big.{ZONE} 60 IN TXT "{i:03d}{"x" * 200}"' for i in range(10)]
    engine, _ = make_engine(Zone.from_texts(ZONE, zone.to_texts() + lines))
    query = dns.message.make_query(dns.name.from_text("big", ZONE), "TXT").to_wire()
    udp = one(engine, query)
    assert udp.flags & dns.flags.TC and not udp.answer
    assert len(one(engine, query, tcp=True).answer[0]) == 10


def test_internal_errors_become_servfail(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = make_engine()

    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("ztos.discovery.engine.answer", boom)
    reply = engine.handle(dns.message.make_query(ZONE, "SOA").to_wire(), "127.0.0.1")
    assert struct.unpack("!H", reply[0][2:4])[0] & 0xF == Rcode.SERVFAIL


def test_answer_cache_patches_the_id_and_is_emptied_by_updates() -> None:
    engine, _ = make_engine()
    query = dns.message.make_query(n.host_name("h1", ZONE), "AAAA")
    first = one(engine, query.to_wire())
    assert first.rcode() == Rcode.NXDOMAIN
    query.id = (query.id + 1) % 65536
    again = one(engine, query.to_wire())
    assert again.id == query.id and again.rcode() == Rcode.NXDOMAIN
    one(engine, signed(host_update(), H1))
    assert one(engine, query.to_wire()).answer[0][0].to_text() == "fd00::1"


def test_transfers_are_never_served_from_the_answer_cache() -> None:
    engine, _ = make_engine()
    wire, _ = axfr(None)
    allowed = dns.message.from_wire(engine.handle(wire, "192.0.2.9", True)[0], keyring=False)
    denied = dns.message.from_wire(engine.handle(wire, "198.51.100.1", True)[0], keyring=False)
    assert allowed.rcode() == Rcode.NOERROR and denied.rcode() == Rcode.REFUSED
