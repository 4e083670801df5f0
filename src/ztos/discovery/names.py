"""The ZTOS DNS naming scheme, in one place (pure).

Every name the discovery package writes or reads is built here, so the zone
layout, the BIND grants and the client's updates cannot drift apart. The scheme
itself is described in the package docstring (``ztos.discovery``).

Host and service labels are validated at this edge: a bad label raises
``InvalidInput`` saying what is allowed, before any message is built.
"""

from __future__ import annotations

import re

import dns.exception
import dns.name

from ztos.errors import InvalidInput
from ztos.naming import NAME_RE

DEFAULT_SUFFIX = "ztos.internal."
HOST_RE = NAME_RE  # a host name is a ZTOS name: one rule (ztos.naming)
SERVICE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?", re.ASCII)
PROTOCOLS = ("tcp", "udp")
RESERVED_HOSTS = frozenset({"ns"})
NS_LABEL = "ns"
ENUMERATION_LABELS = ("_services", "_dns-sd", "_udp")
CONTROLLER_API = ("ztos-api", "tcp")
CONTROLLER_KEY_LABEL = "_ztos-controller"

Name = dns.name.Name


def zone_origin(network: str, suffix: str = DEFAULT_SUFFIX) -> Name:
    """``<network>.ztos.internal.`` (or under another configured suffix)."""
    check_label(network, "network")
    return dns.name.from_text(network, origin=as_name(suffix))


def as_name(text: str | Name, origin: Name | None = None) -> Name:
    """Parse a name; relative text is taken relative to ``origin`` (the zone)."""
    if isinstance(text, Name):
        return text if text.is_absolute() or origin is None else text.derelativize(origin)
    try:
        return dns.name.from_text(text, origin=origin or dns.name.root)
    except dns.exception.DNSException as exc:
        raise InvalidInput(f"{text!r} is not a valid DNS name: {exc}") from exc


def check_label(value: str, what: str) -> str:
    """A host or network name: one lower-case LDH label, 1-63 characters."""
    if not HOST_RE.fullmatch(value):
        raise InvalidInput(
            f"{what} name {value!r} must be 1-63 lower-case letters, digits or '-', "
            "not starting or ending with '-'"
        )
    return value


def check_host(host: str) -> str:
    check_label(host, "host")
    if host in RESERVED_HOSTS:
        raise InvalidInput(f"host name {host!r} is reserved for the zone's name server; pick another")
    return host


def check_service(service: str, proto: str) -> tuple[str, str]:
    """RFC 6335 service names (1-15 characters) and tcp/udp, given without '_'."""
    if not SERVICE_RE.fullmatch(service) or "--" in service:
        raise InvalidInput(
            f"service name {service!r} must be 1-15 lower-case letters, digits or single '-' "
            "(RFC 6335), given without the leading '_'"
        )
    if proto not in PROTOCOLS:
        raise InvalidInput(f"protocol {proto!r} must be one of {', '.join(PROTOCOLS)}")
    return service, proto


def host_name(host: str, zone: Name) -> Name:
    """``<host>.<zone>``: the AAAA/A owner, and the root of everything the host owns."""
    return dns.name.Name((check_host(host).encode(),)).derelativize(zone)


def service_name(service: str, proto: str, host: str, zone: Name) -> Name:
    """``_<svc>._<proto>.<host>.<zone>``: the service's SRV and TXT owner."""
    check_service(service, proto)
    labels = (f"_{service}".encode(), f"_{proto}".encode())
    return dns.name.Name(labels).derelativize(host_name(host, zone))


def browse_name(service: str, proto: str, zone: Name) -> Name:
    """``_<svc>._<proto>.<zone>``: the zone-wide browse PTR owner (controller only)."""
    check_service(service, proto)
    return dns.name.Name((f"_{service}".encode(), f"_{proto}".encode())).derelativize(zone)


def enumeration_name(host: str, zone: Name) -> Name:
    """``_services._dns-sd._udp.<host>.<zone>``: RFC 6763 section 9 list of a host's services."""
    labels = tuple(label.encode() for label in ENUMERATION_LABELS)
    return dns.name.Name(labels).derelativize(host_name(host, zone))


def controller_srv_name(zone: Name) -> Name:
    """``_ztos-api._tcp.<zone>``: SRV records of the controllers' REST API."""
    return browse_name(*CONTROLLER_API, zone)


def ns_name(zone: Name) -> Name:
    """``ns.<zone>``: the zone's own name server (a reserved host name)."""
    return dns.name.Name((NS_LABEL.encode(),)).derelativize(zone)


def host_key_name(host: str, zone: Name) -> Name:
    """A host's TSIG key is named like the host: ``<host>.<zone>``."""
    return host_name(host, zone)


def controller_key_name(zone: Name) -> Name:
    """The controllers' TSIG key: ``_ztos-controller.<zone>`` (no host can be called that)."""
    return dns.name.Name((CONTROLLER_KEY_LABEL.encode(),)).derelativize(zone)


def host_of(name: Name, zone: Name) -> str | None:
    """The host label a name belongs to (``None`` for zone-level names like ``_x._tcp.<zone>``)."""
    if not name.is_subdomain(zone) or name == zone:
        return None
    label = name.relativize(zone).labels[-1].decode()
    return label if HOST_RE.fullmatch(label) else None
