"""The client side of discovery: what agents and the controller call.

``DnsUpdater`` signs the messages built by ``records.py`` with its TSIG key
(HMAC-SHA256) and sends them over TCP (RFC 2136 over TCP: no truncation, no
retransmission of a signed update, which the embedded server would treat as a
replay). It works the same against the embedded server and BIND.

Errors are ``ztos.errors`` exceptions, the DNS reason kept in the text and the
dnspython exception as the cause:

* ``Forbidden``: REFUSED (policy, unsigned, replay) or NOTAUTH with the TSIG
  error (BADKEY: the server does not know the key; BADSIG: wrong secret;
  BADTIME: clock skew or an old message);
* ``Conflict``: a prerequisite failed (YXDOMAIN, YXRRSET, NXDOMAIN, NXRRSET);
* ``InvalidInput``: FORMERR or NOTZONE (a bug on our side, or a wrong zone);
* ``Unreachable`` (retry): timeouts, refused connections, SERVFAIL;
* ``ToolError``: anything else the server says (its rcode in the text).

Which key may do what is the server's business: a host key can only touch
``<host>.<zone>`` and below, so ``publish_browse``, ``set_controllers``,
``transfer`` and ``purge_host`` need the controller key.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.SRV
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from ztos.discovery import keys, names, records
from ztos.discovery.zone import DEFAULT_TTL, Zone
from ztos.errors import Conflict, Forbidden, InvalidInput, ToolError, Unreachable, ZtosError

Name = dns.name.Name
Rcode = dns.rcode.Rcode
RdataType = dns.rdatatype.RdataType
DEFAULT_TIMEOUT = 5.0

_TSIG_ERRORS: dict[type[dns.tsig.PeerError], tuple[str, str]] = {
    dns.tsig.PeerBadKey: ("BADKEY", "the server does not know this key (not added yet, or removed)"),
    dns.tsig.PeerBadSignature: ("BADSIG", "the secret does not match the server's"),
    dns.tsig.PeerBadTime: ("BADTIME", "this host's clock is off from the server's; check NTP"),
    dns.tsig.PeerBadTruncation: ("BADTRUNC", "the server rejected the MAC length"),
}
_RCODE_ERRORS: dict[Rcode, type[ZtosError]] = {
    Rcode.REFUSED: Forbidden,
    Rcode.NOTAUTH: Forbidden,
    Rcode.YXDOMAIN: Conflict,
    Rcode.YXRRSET: Conflict,
    Rcode.NXDOMAIN: Conflict,
    Rcode.NXRRSET: Conflict,
    Rcode.FORMERR: InvalidInput,
    Rcode.NOTZONE: InvalidInput,
    Rcode.SERVFAIL: Unreachable,
}


class DnsUpdater:
    """Signed RFC 2136 updates to one zone on one server, with one key."""

    def __init__(
        self,
        server: str,
        port: int,
        zone: str | Name,
        key_name: str,
        secret: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        self.server, self.port, self.timeout, self.ttl = server, port, timeout, ttl
        self.zone = names.as_name(zone)
        self.key = keys.tsig_key(key_name, secret)

    # --- host records ---------------------------------------------------------------------------

    def replace_host(self, host: str, ipv6: str | None, ipv4: str | None) -> None:
        """``<host>.<zone>`` AAAA/A become exactly ``ipv6``/``ipv4`` (``None``: none of that type)."""
        self.send(records.replace_host(self.zone, host, ipv6, ipv4, self.ttl), f"replace host {host}")

    def register_service(
        self,
        host: str,
        service: str,
        proto: str,
        port: int,
        txt: records.TxtData = (),
        *,
        priority: int = 0,
        weight: int = 0,
    ) -> None:
        """SRV (to ``<host>.<zone>``) and TXT at ``_<service>._<proto>.<host>.<zone>``."""
        message = records.register_service(
            self.zone, host, service, proto, port, txt, ttl=self.ttl, priority=priority, weight=weight
        )
        self.send(message, f"register _{service}._{proto} on {host}")

    def unregister_service(self, host: str, service: str, proto: str) -> None:
        self.send(
            records.unregister_service(self.zone, host, service, proto), f"unregister {service} on {host}"
        )

    def remove_host(self, host: str) -> None:
        """Delete every name at or below ``<host>.<zone>`` that the host registered, in one update."""
        enumeration = names.enumeration_name(host, self.zone)
        registered = [names.as_name(text) for text in self.resolve(enumeration.to_text(), "PTR")]
        owners = records.host_names(self.zone, host, registered)
        self.send(records.delete_names(self.zone, owners), f"remove host {host}")

    # --- controller (zone-wide key) -------------------------------------------------------------

    def purge_host(self, host: str) -> None:
        """Controller: delete every name at/below the host and every PTR pointing there (uses AXFR)."""
        root = names.host_name(host, self.zone)
        zone = self.transfer()
        owners = sorted({name for name, _ in zone.rrsets if name.is_subdomain(root)})
        pointers = [
            (rrset.name, rd.target)
            for (_, rdtype), rrset in zone.rrsets.items()
            if rdtype == RdataType.PTR
            for rd in rrset
            if isinstance(rd, dns.rdtypes.ANY.PTR.PTR) and rd.target.is_subdomain(root)
        ]
        self.send(records.delete_names(self.zone, owners, pointers), f"purge host {host}")

    def publish_browse(self, service: str, proto: str, host: str) -> None:
        message = records.publish_browse(self.zone, service, proto, host, self.ttl)
        self.send(message, f"publish _{service}._{proto} of {host}")

    def withdraw_browse(self, service: str, proto: str, host: str) -> None:
        self.send(records.withdraw_browse(self.zone, service, proto, host), f"withdraw {service} of {host}")

    def set_controllers(self, controllers: Sequence[tuple[str, int]]) -> None:
        """``_ztos-api._tcp.<zone>`` SRV records for these (host name, port) controllers."""
        self.send(records.set_controllers(self.zone, controllers, self.ttl), "set controllers")

    def transfer(self) -> Zone:
        """The whole zone by AXFR, signed with this key (the server must allow the key)."""
        target = dns.zone.Zone(self.zone, relativize=False)
        query, _ = dns.xfr.make_query(target, serial=None, keyring=self.key)
        try:
            dns.query.inbound_xfr(self.server, target, query, port=self.port, timeout=self.timeout)
        except dns.xfr.TransferError as exc:
            raise Forbidden(f"zone transfer of {self.zone} refused: {dns.rcode.to_text(exc.rcode)}") from exc
        except Exception as exc:
            raise _translate(exc, f"zone transfer of {self.zone}", self._where) from exc
        return Zone.from_dnspython(target)

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.server} port {self.port}"

    def send(self, message: dns.update.UpdateMessage, what: str) -> None:
        """Sign and send one update over TCP; raise unless the server answered NOERROR."""
        message.use_tsig(self.key)
        try:
            response = dns.query.tcp(message, self.server, timeout=self.timeout, port=self.port)
        except Exception as exc:
            raise _translate(exc, what, self._where) from exc
        check_rcode(response.rcode(), what, f"{self._where}, key {self.key.name}")

    def resolve(self, name: str, rdtype: str | RdataType) -> list[str]:
        """Rdata texts of ``name`` (relative names are in the zone); ``[]`` for NXDOMAIN/NODATA."""
        return resolve(self.server, self.port, names.as_name(name, self.zone), rdtype, self.timeout)


def _translate(exc: Exception, what: str, where: str) -> ZtosError:
    """dnspython/socket errors to the ZTOS tree (the caller chains the original)."""
    if isinstance(exc, dns.tsig.PeerError):
        code, hint = _TSIG_ERRORS.get(type(exc), ("unknown", str(exc)))
        return Forbidden(f"{what}: refused by {where}: NOTAUTH, TSIG error {code}: {hint}")
    if isinstance(exc, dns.exception.Timeout | OSError | EOFError):
        return Unreachable(f"{what}: DNS server {where} unreachable: {exc or type(exc).__name__}")
    if isinstance(exc, ZtosError):
        return exc
    return ToolError(f"{what}: bad answer from {where}: {exc}")


def check_rcode(rcode: Rcode, what: str, where: str) -> None:
    if rcode == Rcode.NOERROR:
        return
    error = _RCODE_ERRORS.get(rcode, ToolError)
    raise error(f"{what}: {where} answered {dns.rcode.to_text(rcode)}")


def query(server: str, port: int, name: Name, rdtype: str | RdataType, timeout: float) -> dns.message.Message:
    """One unsigned question over UDP, retried over TCP when truncated."""
    rdtype = RdataType.make(rdtype)
    request = dns.message.make_query(name, rdtype)
    try:
        response, _ = dns.query.udp_with_fallback(request, server, timeout=timeout, port=port)
    except Exception as exc:
        raise _translate(exc, f"query {name} {rdtype.name}", f"{server} port {port}") from exc
    return response


def resolve(
    server: str, port: int, name: Name, rdtype: str | RdataType, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Rdata texts of the answer for (name, rdtype), ``[]`` when the name or type does not exist."""
    rdtype = RdataType.make(rdtype)
    response = query(server, port, name, rdtype, timeout)
    if response.rcode() == Rcode.NXDOMAIN:
        return []
    check_rcode(response.rcode(), f"query {name} {rdtype.name}", f"{server} port {port}")
    return [rd.to_text() for rrset in response.answer if rrset.name == name for rd in rrset]


def find_controllers(
    domain: str, resolver_address: str, port: int = 53, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """``https://host:port`` URLs from ``_ztos-api._tcp.<domain>`` SRV, lowest priority first.

    Within a priority, heavier weight first (a deterministic order; RFC 2782's
    weighted random pick is the caller's choice). A target of "." means "no
    service here" and yields nothing.
    """
    owner = names.controller_srv_name(names.as_name(domain))
    response = query(resolver_address, port, owner, RdataType.SRV, timeout)
    if response.rcode() == Rcode.NXDOMAIN:
        return []
    check_rcode(response.rcode(), f"query {owner} SRV", f"{resolver_address} port {port}")
    found = [rd for rrset in response.answer if rrset.name == owner for rd in rrset]
    srvs = sorted(
        (rd for rd in found if isinstance(rd, dns.rdtypes.IN.SRV.SRV) and rd.target != dns.name.root),
        key=lambda rd: (rd.priority, -rd.weight, rd.target),
    )
    return [f"https://{rd.target.to_text(omit_final_dot=True)}:{rd.port}" for rd in srvs]
