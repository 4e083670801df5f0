"""The authoritative zone as a value, and everything a server does to it (pure).

Why pure: the embedded server, the tests and (for checks) the BIND adapter all
need the same answers to "what does this query return?" and "what does this
RFC 2136 update do?". Keeping those as functions over immutable values
(``Zone`` in, ``Answer``/``UpdateOutcome`` out) makes them testable as tables
with no sockets, and makes updates atomic for free: ``apply_update`` builds a
new ``Zone`` or returns the old one untouched, never anything in between.

What is implemented (a single zone, class IN, no delegations, no DNSSEC):

* queries: authoritative answers, NXDOMAIN vs NODATA (empty non-terminals such
  as ``_udp.<host>.<zone>`` exist: NODATA), negative answers carry the SOA
  (RFC 2308 TTL), SRV/NS/PTR answers get their targets' records as additional
  data, DNS64 synthesis when configured (``dns64.py``);
* updates (RFC 2136 section 3): zone section, prerequisites (3.2), prescan
  (3.4.1), the per-key policy (``policy.py``, before anything changes), then
  apply (3.4.2) and one SOA serial bump when something changed. SOA and apex
  NS are protected as the RFC says; adding NS or SOA below the apex is
  REFUSED because this server does not do delegations.

Records are dnspython objects. The zone's ``RRset`` values are never mutated
after a ``Zone`` is built; every change makes new ones.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import cast

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.update
import dns.zone

from ztos.discovery import names
from ztos.discovery.dns64 import Dns64
from ztos.discovery.policy import Policy
from ztos.errors import InvalidInput

Name = dns.name.Name
RRset = dns.rrset.RRset
Rcode = dns.rcode.Rcode
RdataType = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
RRKey = tuple[Name, RdataType]

DEFAULT_TTL = 60
ZONE_TTL = 3600
SOA_TIMERS = (3600, 600, 86400, 60)  # refresh, retry, expire, minimum (negative TTL)
SERIAL_MODULO = 2**32
APEX_PROTECTED = (RdataType.SOA, RdataType.NS)
ADDRESS_TYPES = (RdataType.A, RdataType.AAAA)


@dataclass(frozen=True)
class Zone:
    """One authoritative zone: its origin and RRsets keyed by (owner, type)."""

    origin: Name
    rrsets: Mapping[RRKey, RRset]

    def __post_init__(self) -> None:
        if (self.origin, RdataType.SOA) not in self.rrsets:
            raise InvalidInput(f"zone {self.origin} has no SOA record at its apex")

    @cached_property
    def names(self) -> frozenset[Name]:
        """Every name that exists: owners and the empty non-terminals above them."""
        found: set[Name] = set()
        for owner, _ in self.rrsets:
            while owner not in found and owner.is_subdomain(self.origin):
                found.add(owner)
                owner = owner.parent() if owner != self.origin else owner
        return frozenset(found)

    @property
    def soa(self) -> dns.rdtypes.ANY.SOA.SOA:
        return cast(dns.rdtypes.ANY.SOA.SOA, self.rrsets[(self.origin, RdataType.SOA)][0])

    @property
    def serial(self) -> int:
        return int(self.soa.serial)

    def get(self, name: Name, rdtype: RdataType) -> RRset | None:
        return self.rrsets.get((name, rdtype))

    def at(self, name: Name) -> list[RRset]:
        return [rrset for (owner, _), rrset in sorted(self.rrsets.items()) if owner == name]

    def negative_soa(self) -> RRset:
        """The SOA for negative answers, TTL = min(SOA TTL, SOA minimum) (RFC 2308 section 3)."""
        soa = self.rrsets[(self.origin, RdataType.SOA)]
        return dns.rrset.from_rdata(self.origin, min(soa.ttl, self.soa.minimum), self.soa)

    def ordered(self) -> list[RRset]:
        """SOA first, then every other RRset in canonical order (zone files, AXFR, storage)."""
        soa_key = (self.origin, RdataType.SOA)
        rest = [self.rrsets[key] for key in sorted(self.rrsets) if key != soa_key]
        return [self.rrsets[soa_key], *rest]

    def to_texts(self) -> list[str]:
        """Master-file lines with absolute names, one RR per line."""
        return [line for rrset in self.ordered() for line in rrset.to_text().splitlines()]

    @classmethod
    def from_texts(cls, origin: Name | str, texts: Iterable[str]) -> Zone:
        """Parse master-file lines (as ``to_texts`` writes them); bad input is ``InvalidInput``."""
        origin = names.as_name(origin)
        try:
            parsed = dns.zone.from_text("\n".join(texts), origin=origin, relativize=False)
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"zone {origin}: {exc}") from exc
        return cls.from_dnspython(parsed)

    @classmethod
    def from_dnspython(cls, parsed: dns.zone.Zone) -> Zone:
        """From a dnspython zone built with ``relativize=False`` (a parsed file or a transfer)."""
        assert parsed.origin is not None
        rrsets = {
            (name, rds.rdtype): dns.rrset.from_rdata_list(name, rds.ttl, list(rds))
            for name, rds in parsed.iterate_rdatasets()
        }
        return cls(parsed.origin, rrsets)


def new_zone(
    origin: Name | str,
    ns_addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
    *,
    serial: int = 1,
    ttl: int = ZONE_TTL,
) -> Zone:
    """An empty zone: SOA, NS ``ns.<zone>`` and that name server's addresses (BIND needs them)."""
    origin = names.as_name(origin)
    ns = names.ns_name(origin)
    hostmaster = Name((b"hostmaster",)).derelativize(origin)
    soa = f"{ns} {hostmaster} {serial} {' '.join(map(str, SOA_TIMERS))}"
    texts = [f"{origin} {ttl} IN SOA {soa}", f"{origin} {ttl} IN NS {ns}"]
    for address in ns_addresses:
        kind = "AAAA" if address.version == 6 else "A"
        texts.append(f"{ns} {ttl} IN {kind} {address}")
    return Zone.from_texts(origin, texts)


# --- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What an authoritative server says to one question."""

    rcode: Rcode
    answer: tuple[RRset, ...] = ()
    authority: tuple[RRset, ...] = ()
    additional: tuple[RRset, ...] = ()
    authoritative: bool = True


def answer(zone: Zone, qname: Name, qtype: RdataType, dns64: Dns64 | None = None) -> Answer:
    """Answer one class-IN question from ``zone`` (REFUSED when the name is not ours)."""
    if not qname.is_subdomain(zone.origin):
        return Answer(Rcode.REFUSED, authoritative=False)
    found = zone.at(qname) if qtype == RdataType.ANY else _one(zone.get(qname, qtype))
    if not found and qtype == RdataType.AAAA and dns64 is not None:
        found = _one(synthesize_aaaa(zone, qname, dns64))
    if found:
        return Answer(Rcode.NOERROR, tuple(found), additional=tuple(_additional(zone, found)))
    rcode = Rcode.NOERROR if qname in zone.names else Rcode.NXDOMAIN
    return Answer(rcode, authority=(zone.negative_soa(),))


def _one(rrset: RRset | None) -> list[RRset]:
    return [] if rrset is None else [rrset]


def synthesize_aaaa(zone: Zone, qname: Name, dns64: Dns64) -> RRset | None:
    """RFC 6147 section 5.1.7: AAAA from the name's A records, TTL capped by the SOA minimum."""
    a_records = zone.get(qname, RdataType.A)
    if a_records is None:
        return None
    ttl = min(a_records.ttl, zone.soa.minimum)
    texts = [str(dns64.synthesize(ipaddress.IPv4Address(rd.to_text()))) for rd in a_records]
    return dns.rrset.from_text_list(qname, ttl, IN, RdataType.AAAA, texts)


def _additional(zone: Zone, found: Sequence[RRset]) -> Iterator[RRset]:
    """Records a client will ask for next: addresses of SRV/NS targets, SRV/TXT behind PTRs."""
    seen: set[RRKey] = {(rrset.name, rrset.rdtype) for rrset in found}
    for key in _follow(zone, found):
        if key not in seen and key in zone.rrsets:
            seen.add(key)
            yield zone.rrsets[key]


def _follow(zone: Zone, found: Sequence[RRset]) -> Iterator[RRKey]:
    for rrset in found:
        for rdata in rrset:
            if rrset.rdtype in (RdataType.SRV, RdataType.NS):
                target = cast(Name, getattr(rdata, "target", None))
                yield from ((target, kind) for kind in ADDRESS_TYPES)
            elif rrset.rdtype == RdataType.PTR:
                target = cast(Name, getattr(rdata, "target", None))
                yield from ((target, kind) for kind in (RdataType.SRV, RdataType.TXT))
                srv = zone.get(target, RdataType.SRV)
                yield from _follow(zone, [srv] if srv is not None else [])


def transfer(zone: Zone) -> list[RRset]:
    """The AXFR sequence: SOA, every RRset, SOA again (RFC 5936 section 2.2)."""
    ordered = zone.ordered()
    return [*ordered, ordered[0]]


# --- updates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateOutcome:
    """The result of one RFC 2136 update: the rcode and the zone to keep (old one on failure)."""

    rcode: Rcode
    zone: Zone
    reason: str = ""
    changed: bool = False


class _Reject(Exception):
    def __init__(self, rcode: Rcode, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode
        self.reason = reason


@dataclass(frozen=True)
class _Op:
    """One update RR, classified (RFC 2136 section 2.5): add / delete RRset / delete name / delete RR."""

    kind: str
    name: Name
    rdtype: RdataType
    rdata: dns.rdata.Rdata | None = None
    ttl: int = 0


def apply_update(
    zone: Zone, message: dns.update.UpdateMessage, key_name: Name | None, policy: Policy
) -> UpdateOutcome:
    """Check and apply an update all-or-nothing; ``key_name`` is the verified TSIG key (or None)."""
    try:
        _check_zone_section(zone, message)
        _check_prerequisites(zone, message.prerequisite)
        ops = [_classify(zone, rrset) for rrset in message.update]
        _check_policy(zone, ops, key_name, policy)
    except _Reject as reject:
        return UpdateOutcome(reject.rcode, zone, reject.reason)
    new, changed = _apply(zone, ops)
    return UpdateOutcome(Rcode.NOERROR, new, f"{len(ops)} change(s) applied", changed)


def _check_zone_section(zone: Zone, message: dns.update.UpdateMessage) -> None:
    if len(message.zone) != 1 or message.zone[0].rdtype != RdataType.SOA:
        raise _Reject(Rcode.FORMERR, "the zone section must hold exactly one SOA question")
    if message.zone[0].name != zone.origin or message.zone[0].rdclass != IN:
        raise _Reject(Rcode.NOTAUTH, f"not authoritative for {message.zone[0].name}")


def _in_zone(zone: Zone, rrset: RRset) -> None:
    if not rrset.name.is_subdomain(zone.origin):
        raise _Reject(Rcode.NOTZONE, f"{rrset.name} is outside zone {zone.origin}")


def _check_prerequisites(zone: Zone, prerequisites: Sequence[RRset]) -> None:
    """RFC 2136 section 3.2; value-dependent prerequisites compare whole RRsets at the end."""
    expected: dict[RRKey, set[dns.rdata.Rdata]] = {}
    for rrset in prerequisites:
        _in_zone(zone, rrset)
        if len(rrset) and rrset.ttl != 0:
            raise _Reject(Rcode.FORMERR, f"prerequisite {rrset.name} must have TTL 0")
        if _rrclass(rrset) == IN:
            expected.setdefault((rrset.name, rrset.rdtype), set()).update(rrset)
        else:
            _check_presence(zone, rrset)
    for (name, rdtype), rdatas in expected.items():
        if set(zone.get(name, rdtype) or ()) != rdatas:
            raise _Reject(Rcode.NXRRSET, f"prerequisite failed: {name} {rdtype.name} differs")


def _check_presence(zone: Zone, rrset: RRset) -> None:
    in_use = (
        bool(zone.at(rrset.name))
        if rrset.rdtype == RdataType.ANY
        else (zone.get(rrset.name, rrset.rdtype) is not None)
    )
    if len(rrset) or _rrclass(rrset) not in (dns.rdataclass.ANY, dns.rdataclass.NONE):
        raise _Reject(Rcode.FORMERR, f"malformed prerequisite for {rrset.name}")
    want = _rrclass(rrset) == dns.rdataclass.ANY
    if in_use != want:
        rcode = _PREREQ_FAILURES[(rrset.rdtype == RdataType.ANY, want)]
        raise _Reject(rcode, f"prerequisite failed: {rrset.name} {rrset.rdtype.name}")


_PREREQ_FAILURES = {
    (True, True): Rcode.NXDOMAIN,
    (False, True): Rcode.NXRRSET,
    (True, False): Rcode.YXDOMAIN,
    (False, False): Rcode.YXRRSET,
}


def _rrclass(rrset: RRset) -> dns.rdataclass.RdataClass:
    """The RR's class on the wire: dnspython keeps ANY/NONE of update RRs in ``deleting``."""
    return rrset.deleting if rrset.deleting is not None else rrset.rdclass


def _classify(zone: Zone, rrset: RRset) -> _Op:
    """RFC 2136 section 3.4.1 prescan of one update RR (dnspython gives one RR per RRset)."""
    _in_zone(zone, rrset)
    rdata = rrset[0] if len(rrset) else None
    meta = dns.rdatatype.is_metatype(rrset.rdtype)
    rrclass = _rrclass(rrset)
    if rrclass == IN and rdata is not None and not meta:
        _check_add(zone, rrset.name, rrset.rdtype)
        return _Op("add", rrset.name, rrset.rdtype, rdata, rrset.ttl)
    if rrclass == dns.rdataclass.ANY and rdata is None:
        if rrset.rdtype == RdataType.ANY:
            return _Op("delete-name", rrset.name, rrset.rdtype)
        if not meta:
            return _Op("delete-rrset", rrset.name, rrset.rdtype)
    if rrclass == dns.rdataclass.NONE and rdata is not None and not meta and rrset.ttl == 0:
        return _Op("delete-rr", rrset.name, rrset.rdtype, rdata)
    raise _Reject(Rcode.FORMERR, f"malformed update RR for {rrset.name} {rrset.rdtype.name}")


def _check_add(zone: Zone, name: Name, rdtype: RdataType) -> None:
    if rdtype in APEX_PROTECTED and name != zone.origin:
        raise _Reject(Rcode.REFUSED, f"{rdtype.name} below the apex ({name}): delegations are not supported")


def _check_policy(zone: Zone, ops: Sequence[_Op], key_name: Name | None, policy: Policy) -> None:
    for op in ops:
        types = [rrset.rdtype for rrset in zone.at(op.name)] if op.kind == "delete-name" else [op.rdtype]
        if not policy.allowed(key_name, op.name) or not all(
            policy.allowed(key_name, op.name, rdtype) for rdtype in types
        ):
            raise _Reject(Rcode.REFUSED, f"key {key_name} may not change {op.name} {op.rdtype.name}")


class _Work:
    """The mutable scratch copy an update is applied to; becomes a new Zone at the end."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.records: dict[RRKey, RRset] = dict(zone.rrsets)
        self.touched: set[RRKey] = set()
        self.serial_set = False

    def put(self, key: RRKey, rrset: RRset | None) -> None:
        self.touched.add(key)
        if rrset is None:
            self.records.pop(key, None)
        else:
            self.records[key] = rrset

    @property
    def changed(self) -> bool:
        """Compared at the end, so delete-then-re-add of the same data is no change (no serial bump)."""
        return any(_differs(self.zone.rrsets.get(key), self.records.get(key)) for key in self.touched)

    def finish(self) -> Zone:
        if not self.changed:
            return self.zone
        if not self.serial_set:
            soa_key = (self.zone.origin, RdataType.SOA)
            soa = cast(dns.rdtypes.ANY.SOA.SOA, self.records[soa_key][0])
            bumped = soa.replace(serial=(soa.serial + 1) % SERIAL_MODULO)
            self.records[soa_key] = dns.rrset.from_rdata(self.zone.origin, self.records[soa_key].ttl, bumped)
        return Zone(self.zone.origin, self.records)


def _differs(old: RRset | None, new: RRset | None) -> bool:
    if old is None or new is None:
        return old is not new
    return old.ttl != new.ttl or set(old) != set(new)


def _apply(zone: Zone, ops: Sequence[_Op]) -> tuple[Zone, bool]:
    work = _Work(zone)
    for op in ops:
        _APPLY[op.kind](work, op)
    return work.finish(), work.changed


def _add(work: _Work, op: _Op) -> None:
    assert op.rdata is not None
    key = (op.name, op.rdtype)
    if op.rdtype == RdataType.SOA:
        _replace_soa(work, op)
        return
    if _cname_conflict(work, op):
        return  # RFC 2136 3.4.2.2: CNAME and other data never coexist; the update RR is ignored
    existing = [] if op.rdtype == RdataType.CNAME else list(work.records.get(key, ()))
    work.put(key, dns.rrset.from_rdata_list(op.name, op.ttl, [*existing, op.rdata]))


def _cname_conflict(work: _Work, op: _Op) -> bool:
    types = {rdtype for (owner, rdtype) in work.records if owner == op.name}
    if op.rdtype == RdataType.CNAME:
        return bool(types - {RdataType.CNAME})
    return RdataType.CNAME in types


def _replace_soa(work: _Work, op: _Op) -> None:
    current = cast(dns.rdtypes.ANY.SOA.SOA, work.records[(op.name, RdataType.SOA)][0])
    new = cast(dns.rdtypes.ANY.SOA.SOA, op.rdata)
    if (new.serial - current.serial) % SERIAL_MODULO not in range(1, 2**31):
        return  # RFC 2136 3.4.2.2: an SOA whose serial is not newer is ignored
    work.put((op.name, RdataType.SOA), dns.rrset.from_rdata(op.name, op.ttl, new))
    work.serial_set = True


def _delete_rrset(work: _Work, op: _Op) -> None:
    if op.name == work.zone.origin and op.rdtype in APEX_PROTECTED:
        return
    work.put((op.name, op.rdtype), None)


def _delete_name(work: _Work, op: _Op) -> None:
    for owner, rdtype in [key for key in work.records if key[0] == op.name]:
        _delete_rrset(work, _Op("delete-rrset", owner, rdtype))


def _delete_rr(work: _Work, op: _Op) -> None:
    key = (op.name, op.rdtype)
    existing = work.records.get(key)
    if existing is None or op.rdtype == RdataType.SOA or op.rdata not in existing:
        return
    remaining = [rd for rd in existing if rd != op.rdata]
    if op.rdtype == RdataType.NS and op.name == work.zone.origin and not remaining:
        return  # never delete the last apex NS
    work.put(key, dns.rrset.from_rdata_list(op.name, existing.ttl, remaining) if remaining else None)


_APPLY = {
    "add": _add,
    "delete-rrset": _delete_rrset,
    "delete-name": _delete_name,
    "delete-rr": _delete_rr,
}


__all__ = [
    "DEFAULT_TTL",
    "Answer",
    "UpdateOutcome",
    "Zone",
    "answer",
    "apply_update",
    "new_zone",
    "synthesize_aaaa",
    "transfer",
]
