"""RFC 2136 update messages for the ZTOS record layout, built without I/O (pure).

``updates.DnsUpdater`` signs and sends these; the unit tests apply them to an
in-memory ``Zone`` directly, so "what an agent writes" is tested without a
server. Every builder validates its input (``InvalidInput``) and returns an
unsigned ``dns.update.UpdateMessage`` for one zone. Each message is applied
atomically by the server, so a host never shows half its records.

Services follow the package's naming scheme: SRV and TXT at
``_<svc>._<proto>.<host>.<zone>`` (RFC 6763 requires the TXT, possibly one
empty string), and a PTR to that name from the host's RFC 6763 section 9
enumeration name ``_services._dns-sd._udp.<host>.<zone>``. That PTR is how
``remove_host`` finds every service a host registered without needing a zone
transfer (which host keys are not allowed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.update

from ztos.discovery import names
from ztos.discovery.zone import DEFAULT_TTL
from ztos.errors import InvalidInput

Name = dns.name.Name
RdataType = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
WELL_KNOWN_SERVICES = (("wireguard", "udp"), ("bgp", "tcp"))
TxtData = Mapping[str, str] | Sequence[str]


def _message(zone: Name) -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage(zone, rdclass=IN)


def _address(value: str | None, version: int) -> str | None:
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not an IP address") from exc
    if address.version != version:
        raise InvalidInput(f"{value!r} is not an IPv{version} address")
    return str(address)


def replace_host(
    zone: Name, host: str, ipv6: str | None, ipv4: str | None, ttl: int = DEFAULT_TTL
) -> dns.update.UpdateMessage:
    """Set ``<host>.<zone>`` AAAA and A to exactly these addresses (``None`` removes that type)."""
    name = names.host_name(host, zone)
    message = _message(zone)
    for rdtype, value in ((RdataType.AAAA, _address(ipv6, 6)), (RdataType.A, _address(ipv4, 4))):
        if value is None:
            message.delete(name, rdtype)
        else:
            message.replace(name, ttl, rdtype, value)
    return message


def txt_strings(txt: TxtData) -> tuple[bytes, ...]:
    """DNS-SD TXT strings: ``key=value`` pairs (or given strings); one empty string when none."""
    items = [f"{k}={v}" for k, v in txt.items()] if isinstance(txt, Mapping) else list(txt)
    encoded = tuple(item.encode() for item in items) or (b"",)
    too_long = [item for item in encoded if len(item) > 255]
    if too_long:
        raise InvalidInput(f"TXT strings must be at most 255 bytes: {too_long[0][:40]!r}...")
    return encoded


def register_service(
    zone: Name,
    host: str,
    service: str,
    proto: str,
    port: int,
    txt: TxtData = (),
    *,
    ttl: int = DEFAULT_TTL,
    priority: int = 0,
    weight: int = 0,
) -> dns.update.UpdateMessage:
    """SRV + TXT at ``_<svc>._<proto>.<host>.<zone>`` and the host's enumeration PTR to it."""
    if not 0 <= port <= 65535 or not 0 <= priority <= 65535 or not 0 <= weight <= 65535:
        raise InvalidInput(f"port/priority/weight must be 0-65535 (got {port}/{priority}/{weight})")
    owner = names.service_name(service, proto, host, zone)
    target = names.host_name(host, zone)
    message = _message(zone)
    message.replace(owner, ttl, _srv(priority, weight, port, target))
    message.replace(owner, ttl, dns.rdtypes.ANY.TXT.TXT(IN, RdataType.TXT, txt_strings(txt)))
    message.add(names.enumeration_name(host, zone), ttl, _ptr(owner))
    return message


def unregister_service(zone: Name, host: str, service: str, proto: str) -> dns.update.UpdateMessage:
    owner = names.service_name(service, proto, host, zone)
    message = _message(zone)
    message.delete(owner)
    message.delete(names.enumeration_name(host, zone), _ptr(owner))
    return message


def _ptr(target: Name) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, RdataType.PTR, target.to_text())


def _srv(priority: int, weight: int, port: int, target: Name) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, RdataType.SRV, f"{priority} {weight} {port} {target.to_text()}")


def host_names(zone: Name, host: str, registered: Iterable[Name] = ()) -> list[Name]:
    """Every name a host may have written: its own, its enumeration, well-known and registered services."""
    found = [names.host_name(host, zone), names.enumeration_name(host, zone)]
    found += [names.service_name(svc, proto, host, zone) for svc, proto in WELL_KNOWN_SERVICES]
    found += [name for name in registered if name.is_subdomain(found[0])]
    return sorted(set(found))


def delete_names(
    zone: Name, owners: Iterable[Name], pointers: Iterable[tuple[Name, Name]] = ()
) -> dns.update.UpdateMessage:
    """Delete every RRset at ``owners`` and each PTR ``(owner, target)`` in ``pointers``, atomically."""
    message = _message(zone)
    for owner in owners:
        message.delete(owner)
    for owner, target in pointers:
        message.delete(owner, _ptr(target))
    return message


def publish_browse(
    zone: Name, service: str, proto: str, host: str, ttl: int = DEFAULT_TTL
) -> dns.update.UpdateMessage:
    """Controller: ``_<svc>._<proto>.<zone>`` PTR ``_<svc>._<proto>.<host>.<zone>``."""
    message = _message(zone)
    message.add(
        names.browse_name(service, proto, zone), ttl, _ptr(names.service_name(service, proto, host, zone))
    )
    return message


def withdraw_browse(zone: Name, service: str, proto: str, host: str) -> dns.update.UpdateMessage:
    message = _message(zone)
    message.delete(
        names.browse_name(service, proto, zone), _ptr(names.service_name(service, proto, host, zone))
    )
    return message


def set_controllers(
    zone: Name, controllers: Sequence[tuple[str, int]], ttl: int = DEFAULT_TTL
) -> dns.update.UpdateMessage:
    """Controller: ``_ztos-api._tcp.<zone>`` SRV to exactly these (name, port) pairs.

    A name with a dot is a full domain name (``ctl1.example.com``); a single
    label is a ZTOS host in this zone (``ctl1`` -> ``ctl1.<zone>``).
    """
    owner = names.controller_srv_name(zone)
    message = _message(zone)
    message.delete(owner, RdataType.SRV)
    for host, port in controllers:
        target = names.as_name(host, None if "." in host.rstrip(".") else zone)
        message.add(owner, ttl, _srv(0, 0, port, target))
    return message
