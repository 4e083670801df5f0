"""Tenant and workload allocation (pure): VNIs, prefixes, addresses, MACs.

Everything here is a function of what the directory already holds, so the
controller can allocate inside one transaction and tests need no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from ztos import addressing
from ztos.errors import Conflict, InvalidInput
from ztos.model import MAX_VNI, Tenant, Workload

FIRST_AUTO_VNI = 100
FIRST_WORKLOAD_HOST = 10  # .1 is the anycast gateway; .2-.9 are kept for services


def next_vni(tenants: Iterable[Tenant]) -> int:
    used = {tenant.vni for tenant in tenants}
    vni = FIRST_AUTO_VNI
    while vni in used:
        vni += 1
    if vni > MAX_VNI:
        raise Conflict("no free VNI left")
    return vni


def next_ipv6_prefix(ula: ipaddress.IPv6Network, tenants: Iterable[Tenant]) -> ipaddress.IPv6Network:
    used = {tenant.ipv6_prefix for tenant in tenants}
    for index in range(1, 2**16):
        prefix = addressing.tenant_subnet(ula, index)
        if prefix not in used:
            return prefix
    raise Conflict(f"no free tenant /64 left in {ula}")


def check_ipv4_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise InvalidInput(f"--ipv4 {text!r} is not an IPv4 CIDR with host bits zero: {exc}") from exc
    if subnet.prefixlen > 28:
        raise InvalidInput(f"--ipv4 {subnet} is too small: use /28 or larger")
    return subnet


def gateway_mac(vni: int) -> str:
    """The anycast gateway MAC of a tenant: locally administered, the same on every node."""
    return "02:5a:54:" + ":".join(f"{(vni >> shift) & 0xFF:02x}" for shift in (16, 8, 0))


def gateway_addresses(tenant: Tenant) -> tuple[str, ...]:
    v6 = f"{tenant.ipv6_prefix.network_address + 1}/{tenant.ipv6_prefix.prefixlen}"
    if tenant.ipv4_prefix is None:
        return (v6,)
    return (v6, f"{tenant.ipv4_prefix.network_address + 1}/{tenant.ipv4_prefix.prefixlen}")


def workload_mac(tenant: str, name: str) -> str:
    digest = hashlib.sha256(f"{tenant}/{name}".encode()).digest()
    return "02:" + ":".join(f"{byte:02x}" for byte in digest[:5])


def workload_addresses(
    tenant: Tenant, workloads: Iterable[Workload]
) -> tuple[ipaddress.IPv6Interface, ipaddress.IPv4Interface | None]:
    """The lowest host index free in the tenant, used for both families."""
    taken = {
        int(w.ipv6.ip) - int(tenant.ipv6_prefix.network_address) for w in workloads if w.tenant == tenant.name
    }
    index = FIRST_WORKLOAD_HOST
    while index in taken:
        index += 1
    ipv6 = ipaddress.IPv6Interface(
        f"{tenant.ipv6_prefix.network_address + index}/{tenant.ipv6_prefix.prefixlen}"
    )
    if tenant.ipv4_prefix is None:
        return ipv6, None
    if index >= tenant.ipv4_prefix.num_addresses - 1:
        raise Conflict(f"tenant {tenant.name}'s IPv4 subnet {tenant.ipv4_prefix} is full")
    ipv4 = ipaddress.IPv4Interface(
        f"{tenant.ipv4_prefix.network_address + index}/{tenant.ipv4_prefix.prefixlen}"
    )
    return ipv6, ipv4
