"""Overlay addressing: the network's prefixes and each node's addresses.

* A network gets one random ULA /48 (RFC 4193) and one random IPv4 /16 from
  10.0.0.0/8 (IPv4 workloads, and VTEPs for FRR 8.4 EVPN, which needs IPv4).
* Subnet 0 of the /48 holds node addresses: the interface identifier is the
  first 64 bits of SHA-256 over the node's WireGuard public key, so a node's
  overlay address proves which key it owns (as in Yggdrasil/Mycelium).
* Subnets 1.. are tenant /64s.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable

from ztos.errors import Conflict

IPv6Net = ipaddress.IPv6Network
IPv4Net = ipaddress.IPv4Network


def random_ula_prefix() -> IPv6Net:
    global_id = secrets.randbits(40)
    value = (0xFD << 120) | (global_id << 80)
    return IPv6Net((value, 48))


def random_ipv4_prefix() -> IPv4Net:
    """A random /16 inside 10.0.0.0/8, avoiding 10.0/16 which home routers love."""
    second_octet = 1 + secrets.randbelow(254)
    return IPv4Net(f"10.{second_octet}.0.0/16")


def node_subnet(ula: IPv6Net) -> IPv6Net:
    return next(ula.subnets(new_prefix=64))


def tenant_subnet(ula: IPv6Net, index: int) -> IPv6Net:
    """Tenant ``index`` (1-based) gets subnet ``index`` of the /48."""
    if not 1 <= index < 2**16:
        raise ValueError(f"tenant subnet index {index} out of range 1..65535")
    return IPv6Net((int(ula.network_address) | (index << 64), 64))


def overlay_ipv6(ula: IPv6Net, wg_public_key: str) -> ipaddress.IPv6Address:
    digest = hashlib.sha256(base64.b64decode(wg_public_key)).digest()
    interface_id = int.from_bytes(digest[:8], "big")
    return ipaddress.IPv6Address(int(node_subnet(ula).network_address) | interface_id)


def key_matches_address(ula: IPv6Net, wg_public_key: str, address: ipaddress.IPv6Address) -> bool:
    return overlay_ipv6(ula, wg_public_key) == address


def allocate_ipv4(prefix: IPv4Net, taken: Iterable[ipaddress.IPv4Address]) -> ipaddress.IPv4Address:
    """Lowest free host address; .1-.9 of the prefix are kept for gateways."""
    used = set(taken)
    for index, address in enumerate(prefix.hosts()):
        if index >= 9 and address not in used:
            return address
    raise Conflict(f"IPv4 overlay prefix {prefix} is full")


def ipv4_host_count(prefix: IPv4Net) -> int:
    """How many host addresses ``prefix.hosts()`` yields (without listing them)."""
    return prefix.num_addresses - 2 if prefix.prefixlen < 31 else prefix.num_addresses


def ipv4_host(prefix: IPv4Net, index: int) -> ipaddress.IPv4Address:
    """Host address number ``index`` of ``prefix``, as ``list(prefix.hosts())[index]``."""
    if not 0 <= index < ipv4_host_count(prefix):
        raise ValueError(f"host index {index} out of range for {prefix}")
    first = int(prefix.network_address) + (1 if prefix.prefixlen < 31 else 0)
    return ipaddress.IPv4Address(first + index)


def ipv4_host_index(prefix: IPv4Net, address: ipaddress.IPv4Address) -> int | None:
    """The inverse of ``ipv4_host``; None for an address that is no host of ``prefix``."""
    index = int(address) - int(prefix.network_address) - (1 if prefix.prefixlen < 31 else 0)
    return index if 0 <= index < ipv4_host_count(prefix) else None
