"""The embedded DNS server's whole behaviour, as one I/O-free object.

``DnsEngine.handle(wire, client, tcp)`` takes one request as bytes and returns
the response messages as bytes (none: drop; several: a zone transfer). It owns
the zone, the keyring, the policy and the replay cache; the clock, the
persistence hook and (optionally) where replays are remembered are injected.
``server.py`` is only the socket loop around it (the dnspython
``_Resolution`` pattern), and tests drive it with plain bytes.

Security rules, in the order they apply:

* anything unparseable gets FORMERR when it has a 12-byte header that is not a
  response, else it is dropped; nothing raised escapes ``handle`` (SERVFAIL);
* a TSIG-signed request is verified against the keyring: unknown key or
  algorithm -> NOTAUTH/BADKEY, bad MAC -> NOTAUTH/BADSIG (both unsigned, as
  RFC 8945 says), time off by more than the fudge (ours, default 300 s, or the
  request's if smaller) -> NOTAUTH/BADTIME, signed. Old captured updates
  therefore fail;
* UPDATE must be signed (unsigned -> REFUSED), must not repeat a (key, MAC)
  pair seen within twice the fudge (replay cache, in the directory when the
  controller runs the server -> REFUSED), and every
  changed name must be allowed to the key by the policy (-> REFUSED);
* AXFR only over TCP and only for a key or client address in ``TransferAcl``.

A successful update is handed to ``persist`` *before* it becomes the served
zone; if persisting fails the client gets SERVFAIL and nothing changed.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.update
import dns.wire

from ztos.discovery import keys as keyring_mod
from ztos.discovery import names
from ztos.discovery.dns64 import Dns64
from ztos.discovery.policy import Grant, Policy
from ztos.discovery.zone import Zone, answer, apply_update, transfer

log = logging.getLogger("ztos.discovery.server")

Name = dns.name.Name
Rcode = dns.rcode.Rcode
RdataType = dns.rdatatype.RdataType
Clock = Callable[[], float]
Persist = Callable[[Zone], None]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_FUDGE = 300
UDP_DEFAULT = 512
TRANSFER_CHUNK = 64
HEADER = struct.Struct("!HHHHHH")
# dnspython names rcode 16 BADVERS; in a TSIG record it means BADSIG (RFC 8945 section 3).
TSIG_ERRORS = {Rcode.BADSIG: "BADSIG", Rcode.BADKEY: "BADKEY", Rcode.BADTIME: "BADTIME"}


@dataclass(frozen=True)
class TransferAcl:
    """Who may AXFR the zone: requests signed with one of ``keys``, or from one of ``networks``."""

    keys: frozenset[Name] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows(self, key: Name | None, client: str) -> bool:
        if key is not None and key in self.keys:
            return True
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class EngineSettings:
    """``answer_cache``: how many rendered answers to unsigned queries to keep (0: none)."""

    fudge: int = DEFAULT_FUDGE
    transfer: TransferAcl = field(default_factory=TransferAcl)
    dns64: Dns64 | None = None
    max_udp_payload: int = 1232
    answer_cache: int = 4096


class AnswerCache:
    """Rendered responses to unsigned queries, keyed by the request's bytes after the ID.

    An unsigned query's answer depends only on its exact bytes, the transport
    (truncation) and the zone, so identical bytes may get identical bytes back
    with the ID patched in. This skips parsing and rendering for the hot
    names; the cache is emptied whenever the served zone changes. Signed
    requests, updates and transfers are never cached.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple[bool, bytes], bytes] = {}

    def get(self, wire: bytes, tcp: bool) -> bytes | None:
        body = self._entries.get((tcp, wire[2:]))
        return None if body is None else wire[:2] + body

    def put(self, wire: bytes, tcp: bool, response: bytes) -> None:
        if self.size <= 0:
            return
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]  # oldest first
        self._entries[(tcp, wire[2:])] = response[2:]

    def clear(self) -> None:
        self._entries.clear()


class ReplayGuard(Protocol):
    """Where the engine remembers the (key, MAC) pairs of signed updates it has seen.

    ``ReplayCache`` keeps them in memory (one process, forgotten on restart);
    the controller passes one backed by the directory, so a restarted server,
    or another replica over the same directory, still refuses a replay.
    """

    def check_and_add(self, key: Name, mac: bytes, now: float) -> bool:
        """True when this pair was already seen (a replay); records it otherwise, atomically."""
        ...


class ReplayCache:
    """(key, MAC) pairs of accepted-signature updates, kept while a replay could still pass the time check.

    A request signed at ``t`` passes the time check until ``t + fudge`` and
    cannot arrive before ``t - fudge``, so remembering each pair for twice the
    fudge after arrival covers its whole validity. Only requests with a valid
    MAC get here, so an attacker cannot fill the cache.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[tuple[Name, bytes], float] = OrderedDict()

    def check_and_add(self, key: Name, mac: bytes, now: float) -> bool:
        """True when this pair was already seen (a replay); records it otherwise."""
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if (key, mac) in self._seen:
            return True
        self._seen[(key, mac)] = now + self.window
        return False


@dataclass(frozen=True)
class _TsigFailure:
    error: Rcode


class DnsEngine:
    """One zone's authoritative server logic: bytes in, bytes out."""

    def __init__(
        self,
        zone: Zone,
        keys: keyring_mod.Keyring,
        policy: Policy,
        settings: EngineSettings | None = None,
        *,
        clock: Clock = time.time,
        persist: Persist | None = None,
        replays: ReplayGuard | None = None,
    ) -> None:
        self._zone = zone
        self.keys = dict(keys)
        self.policy = policy
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.persist = persist
        self.replays = replays or ReplayCache(replay_window(self.settings))
        self.answers = AnswerCache(self.settings.answer_cache)

    @property
    def zone(self) -> Zone:
        return self._zone

    def add_key(self, name: str | Name, secret: str, grants: Iterable[Grant] = ()) -> None:
        key = keyring_mod.tsig_key(name, secret)
        self.keys[key.name] = key
        self.policy = self.policy.with_key(key.name, grants)

    def remove_key(self, name: str | Name) -> None:
        key_name = names.as_name(name)
        self.keys.pop(key_name, None)
        self.policy = self.policy.without_key(key_name)

    def handle(self, wire: bytes, client: str, tcp: bool = False) -> list[bytes]:
        """The response(s) to one request; never raises."""
        try:
            return self._handle(wire, client, tcp)
        except Exception:
            log.exception("internal error answering a request from %s", client)
            return header_only(wire, Rcode.SERVFAIL)

    def _handle(self, wire: bytes, client: str, tcp: bool) -> list[bytes]:
        if (cached := self.answers.get(wire, tcp)) is not None:
            return [cached]
        request = parse(wire)
        if request is None:
            return header_only(wire, Rcode.FORMERR)
        if request.flags & dns.flags.QR:
            return []
        verified = self._verify(request, wire)
        if isinstance(verified, _TsigFailure):
            return [self._tsig_error(request, verified.error)]
        if request.opcode() == dns.opcode.QUERY:
            return self._query(request, wire, client, tcp)
        if request.opcode() == dns.opcode.UPDATE and isinstance(request, dns.update.UpdateMessage):
            return [self._render(request, self._update(request), tcp)]
        return [self._render(request, self._response(request, Rcode.NOTIMP), tcp)]

    # --- TSIG -----------------------------------------------------------------------------------

    def _verify(self, request: dns.message.Message, wire: bytes) -> _TsigFailure | None:
        """Check a request's TSIG; on success the key is set on the request so responses are signed."""
        if not request.had_tsig:
            return None
        assert request.keyname is not None and request.tsig is not None
        key = self.keys.get(request.keyname)
        if key is None or key.algorithm != request.keyalgorithm:
            return _TsigFailure(Rcode.BADKEY)
        rdata = request.tsig[0]
        now = self.clock()
        try:
            dns.tsig.validate(  # type: ignore[no-untyped-call]
                wire, key, request.keyname, rdata, int(now), b"", tsig_offset(wire)
            )
        except dns.tsig.BadTime:
            return _TsigFailure(Rcode.BADTIME)
        except dns.exception.DNSException:
            return _TsigFailure(Rcode.BADSIG)
        if abs(rdata.time_signed - now) > self.settings.fudge:
            return _TsigFailure(Rcode.BADTIME)
        request.keyring = key
        return None

    def _tsig_error(self, request: dns.message.Message, error: Rcode) -> bytes:
        log.warning("TSIG %s from key %s (request id %d)", TSIG_ERRORS[error], request.keyname, request.id)
        response = dns.message.make_response(request)
        response.set_rcode(Rcode.NOTAUTH)
        assert request.keyname is not None and request.keyalgorithm is not None
        now = int(self.clock())
        if error == Rcode.BADTIME:
            key = self.keys[request.keyname]
            other = struct.pack("!HI", now >> 32, now & 0xFFFFFFFF)
            response.use_tsig(key, request.keyname, self.settings.fudge, None, error, other)
            response.request_mac = request.mac or b""
            return response.to_wire()
        response.tsig = unsigned_tsig(request, error, now, self.settings.fudge)
        return response.to_wire()

    # --- queries and transfers ------------------------------------------------------------------

    def _response(self, request: dns.message.Message, rcode: Rcode, aa: bool = False) -> dns.message.Message:
        response = dns.message.make_response(request)
        response.set_rcode(rcode)
        if aa:
            response.flags |= dns.flags.AA
        return response

    def _query(self, request: dns.message.Message, wire: bytes, client: str, tcp: bool) -> list[bytes]:
        if len(request.question) != 1:
            return [self._render(request, self._response(request, Rcode.FORMERR), tcp)]
        question = request.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return [self._render(request, self._response(request, Rcode.REFUSED), tcp)]
        if question.rdtype in (RdataType.AXFR, RdataType.IXFR):
            return self._transfer(request, client, tcp)
        found = answer(self._zone, question.name, question.rdtype, self.settings.dns64)
        response = self._response(request, found.rcode, found.authoritative)
        response.answer = list(found.answer)
        response.authority = list(found.authority)
        response.additional = list(found.additional)
        rendered = self._render(request, response, tcp)
        if not request.had_tsig:  # transfers (client-dependent) never get here
            self.answers.put(wire, tcp, rendered)
        return [rendered]

    def _transfer(self, request: dns.message.Message, client: str, tcp: bool) -> list[bytes]:
        key = request.keyring.name if isinstance(request.keyring, dns.tsig.Key) else None
        allowed = self.settings.transfer.allows(key, client)
        if not tcp or request.question[0].name != self._zone.origin or not allowed:
            log.warning("zone transfer refused to %s (key %s, tcp %s)", client, key, tcp)
            return [self._render(request, self._response(request, Rcode.REFUSED), tcp)]
        chunks = _chunks(transfer(self._zone), TRANSFER_CHUNK)
        return self._transfer_messages(request, chunks)

    def _transfer_messages(
        self, request: dns.message.Message, chunks: Sequence[list[dns.rrset.RRset]]
    ) -> list[bytes]:
        """RFC 5936 messages; with TSIG each is signed and chained to the previous one (RFC 8945 5.3.1)."""
        wires, ctx = [], None
        for index, chunk in enumerate(chunks):
            response = self._response(request, Rcode.NOERROR, aa=True)
            if index:
                response.question = []
            response.answer = chunk
            wires.append(response.to_wire(multi=True, tsig_ctx=ctx))
            ctx = response.tsig_ctx
        return wires

    # --- updates --------------------------------------------------------------------------------

    def _update(self, request: dns.update.UpdateMessage) -> dns.message.Message:
        key = request.keyring if isinstance(request.keyring, dns.tsig.Key) else None
        if key is None:
            log.warning("unsigned update refused (id %d)", request.id)
            return self._response(request, Rcode.REFUSED)
        if self.replays.check_and_add(key.name, request.mac or b"", self.clock()):
            log.warning("replayed update from key %s refused", key.name)
            return self._response(request, Rcode.REFUSED)
        outcome = apply_update(self._zone, request, key.name, self.policy)
        log.info("update from key %s: %s (%s)", key.name, outcome.rcode.name, outcome.reason)
        if outcome.changed and not self._commit(outcome.zone):
            return self._response(request, Rcode.SERVFAIL)
        return self._response(request, outcome.rcode)

    def _commit(self, zone: Zone) -> bool:
        try:
            if self.persist is not None:
                self.persist(zone)
        except Exception:
            log.exception("could not persist zone %s serial %d; update refused", zone.origin, zone.serial)
            return False
        self._zone = zone
        self.answers.clear()
        return True

    # --- wire -----------------------------------------------------------------------------------

    def _render(self, request: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
        """Wire form, truncated (TC, empty sections) when it does not fit a UDP response."""
        limit = 65535 if tcp else self._udp_limit(request)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    def _udp_limit(self, request: dns.message.Message) -> int:
        if request.edns < 0:
            return UDP_DEFAULT
        return max(UDP_DEFAULT, min(request.payload, self.settings.max_udp_payload))


def replay_window(settings: EngineSettings) -> float:
    """How long a seen (key, MAC) pair must be remembered: twice the fudge (see ``ReplayCache``)."""
    return 2.0 * settings.fudge


def parse(wire: bytes) -> dns.message.Message | None:
    """A message with its TSIG read but not verified (``keyring=False``); ``None`` if malformed."""
    try:
        return dns.message.from_wire(wire, keyring=False)
    except Exception:  # dnspython raises many types for hostile input; all mean FORMERR
        return None


def header_only(wire: bytes, rcode: Rcode) -> list[bytes]:
    """A bare response echoing id/opcode/RD, for requests too broken to parse; none for responses."""
    if len(wire) < HEADER.size:
        return []
    ident, flags = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return []
    out = dns.flags.QR | (flags & 0x7800) | (flags & dns.flags.RD) | int(rcode)
    return [HEADER.pack(ident, out, 0, 0, 0, 0)]


def tsig_offset(wire: bytes) -> int:
    """Where the last record (the TSIG, as the parser already checked) starts in ``wire``."""
    parser = dns.wire.Parser(wire)
    _, _, qdcount, ancount, nscount, arcount = parser.get_struct("!HHHHHH")
    for _ in range(qdcount):
        parser.get_name(decompress=True)
        parser.get_struct("!HH")
    for _ in range(ancount + nscount + arcount - 1):
        parser.get_name(decompress=True)
        rdlength = parser.get_struct("!HHIH")[3]
        parser.seek(parser.current + rdlength)
    return parser.current


def unsigned_tsig(request: dns.message.Message, error: Rcode, now: int, fudge: int) -> dns.rrset.RRset:
    """The MAC-less TSIG record RFC 8945 5.3.2 puts in BADKEY/BADSIG responses."""
    assert request.keyname is not None and request.keyalgorithm is not None
    rdata = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, RdataType.TSIG, request.keyalgorithm, now, fudge, b"", request.id, error, b""
    )
    return dns.rrset.from_rdata(request.keyname, 0, rdata)


def _chunks(rrsets: list[dns.rrset.RRset], size: int) -> list[list[dns.rrset.RRset]]:
    return [rrsets[i : i + size] for i in range(0, len(rrsets), size)]
