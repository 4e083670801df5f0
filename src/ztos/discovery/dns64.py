"""DNS64 address synthesis (RFC 6147 answers, RFC 6052 address format), pure.

Why it lives in the authoritative server: ZTOS hosts that speak only IPv6
reach IPv4-only workloads through NAT64 (tayga on gateway nodes). When DNS64 is
on and an AAAA query hits a name that has A records but no AAAA, the server
answers with AAAA records made of the NAT64 prefix plus the IPv4 address, so
clients need no special resolver. The default prefix is the well-known
``64:ff9b::/96``; note (COMPONENTS.md) that tayga refuses private IPv4
destinations with it, so a network-specific prefix (inside the ZTOS ULA) is
what real deployments configure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ztos.errors import InvalidInput

WELL_KNOWN_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)
U_OCTET = 8


@dataclass(frozen=True)
class Dns64:
    """DNS64 settings: the NAT64 prefix (RFC 6052 lengths 32, 40, 48, 56, 64 or 96)."""

    prefix: ipaddress.IPv6Network = WELL_KNOWN_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def synthesize(self, ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
        return embed_ipv4(self.prefix, ipv4)


def check_prefix(prefix: ipaddress.IPv6Network) -> None:
    if prefix.prefixlen not in PREFIX_LENGTHS:
        lengths = ", ".join(f"/{n}" for n in PREFIX_LENGTHS)
        raise InvalidInput(f"NAT64 prefix {prefix} must be one of {lengths} (RFC 6052)")
    if prefix.network_address.packed[U_OCTET] != 0:
        raise InvalidInput(f"NAT64 prefix {prefix}: bits 64-71 must be zero (RFC 6052 section 2.2)")


def embed_ipv4(prefix: ipaddress.IPv6Network, ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """RFC 6052 section 2.2: the IPv4 bytes follow the prefix, skipping the u octet (bits 64-71)."""
    check_prefix(prefix)
    out = bytearray(prefix.network_address.packed)
    start = prefix.prefixlen // 8
    positions = [i for i in range(start, 16) if i != U_OCTET][:4]
    for position, byte in zip(positions, ipv4.packed, strict=True):
        out[position] = byte
    return ipaddress.IPv6Address(bytes(out))
