"""Who may change which names: the per-key update policy table (pure).

One table drives both servers: the embedded server evaluates it on every
RFC 2136 update (``Policy.allowed``), and ``bind.py`` renders the very same
table as BIND ``update-policy`` grants. Two kinds of grant are enough:

* ``ZoneWide()``: any name in the zone (BIND ``zonesub``), for the controller
  key, which maintains browse PTRs and the ``_ztos-api._tcp`` SRV records;
* ``SubdomainOf(name)``: the name and everything below it (BIND
  ``subdomain``), for a host key over ``<host>.<zone>``.

A grant may also restrict record types. Host grants do, to A, AAAA, SRV, TXT
and PTR: a host must not be able to add NS records at its own name (that would
make ``<host>.<zone>`` a delegation in BIND) or any other type the scheme does
not use. A key with no entry is allowed nothing; so is an unsigned request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype

from ztos.discovery import names

Name = dns.name.Name
RdataType = dns.rdatatype.RdataType

HOST_TYPES: frozenset[RdataType] = frozenset(
    {RdataType.A, RdataType.AAAA, RdataType.SRV, RdataType.TXT, RdataType.PTR}
)


@dataclass(frozen=True)
class ZoneWide:
    """Every name in the zone; ``types`` of ``None`` means every type."""

    types: frozenset[RdataType] | None = None

    def covers(self, owner: Name, zone: Name) -> bool:
        return owner.is_subdomain(zone)


@dataclass(frozen=True)
class SubdomainOf:
    """``name`` and every name below it."""

    name: Name
    types: frozenset[RdataType] | None = HOST_TYPES

    def covers(self, owner: Name, zone: Name) -> bool:
        return owner.is_subdomain(self.name) and owner.is_subdomain(zone)


Grant = ZoneWide | SubdomainOf


def _type_ok(grant: Grant, rdtype: RdataType | None) -> bool:
    return rdtype is None or grant.types is None or rdtype in grant.types


@dataclass(frozen=True)
class Policy:
    """The table ``{key name: (grant, ...)}`` for one zone."""

    zone: Name
    grants: Mapping[Name, tuple[Grant, ...]] = field(default_factory=dict)

    def allowed(
        self, key_name: Name | str | None, owner: Name | str, rdtype: RdataType | None = None
    ) -> bool:
        """May ``key_name`` change ``owner`` (records of ``rdtype``; ``None``: the name at all)?"""
        if key_name is None:
            return False
        key, name = names.as_name(key_name), names.as_name(owner, self.zone)
        return any(g.covers(name, self.zone) and _type_ok(g, rdtype) for g in self.grants.get(key, ()))

    def with_key(self, key_name: Name | str, grants: Iterable[Grant]) -> Policy:
        """A copy where ``key_name`` has exactly ``grants``."""
        table = dict(self.grants)
        table[names.as_name(key_name)] = tuple(grants)
        return Policy(self.zone, table)

    def without_key(self, key_name: Name | str) -> Policy:
        table = {k: v for k, v in self.grants.items() if k != names.as_name(key_name)}
        return Policy(self.zone, table)

    def key_names(self) -> tuple[Name, ...]:
        return tuple(sorted(self.grants))


def host_grants(host: str, zone: Name) -> tuple[Grant, ...]:
    """What a host key may do: its own name and everything below, host record types only."""
    return (SubdomainOf(names.host_name(host, zone)),)


def network_policy(zone: Name, hosts: Iterable[str], controller_key: Name | None = None) -> Policy:
    """The standard table: the controller key zone-wide, each host key over its own subtree."""
    table: dict[Name, tuple[Grant, ...]] = {
        names.host_key_name(host, zone): host_grants(host, zone) for host in hosts
    }
    table[controller_key or names.controller_key_name(zone)] = (ZoneWide(),)
    return Policy(zone, table)
