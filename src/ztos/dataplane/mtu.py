"""WireGuard MTU: the overhead arithmetic (pure) and path-MTU discovery (the ``ping`` adapter).

WireGuard adds 32 bytes of its own plus UDP (8) plus the outer IP header (40
for IPv6, 20 for IPv4): the classic 80/60 bytes. Too large an MTU makes every
big packet fragment or vanish (the underlay drops DF packets silently on paths
that filter ICMP); too small wastes throughput (a 9000-byte underlay carries
8920-byte overlay packets at several times the rate of 1420-byte ones). So the
agent measures: the effective WireGuard MTU is
``overlay_mtu(min(local link MTU, path MTU to every peer))``.

Discovery sends ICMP echo with Don't-Fragment (``ping -M do``) to a peer's
underlay address: first the local link MTU (the usual answer, one probe), then
the MTU a "packet too big" reply names, then a bisection for paths that drop
big packets without saying so. Every probe and the whole search are bounded.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence

from ztos.dataplane import links
from ztos.dataplane.nsexec import probe_in_netns
from ztos.errors import InvalidInput, ToolError, Unreachable

WG_OVERHEAD_IPV6 = 80
WG_OVERHEAD_IPV4 = 60
IPV6_MIN_MTU = 1280
IPV4_MIN_MTU = 576
ICMP_OVERHEAD = {6: 40 + 8, 4: 20 + 8}
MAX_PROBES = 24
SEARCH_DEADLINE = 20.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MTU_HINT = re.compile(r"mtu\s*[=:]\s*(\d+)")


def overlay_mtu(underlay_mtu: int, ipv6_underlay: bool) -> int:
    """The WireGuard MTU for an underlay MTU; never below 1280, the overlay carries IPv6.

    Below that, the underlay has to fragment the encrypted packets (it may:
    the sender's stack fragments its own UDP), which is slower but still works.
    """
    floor = IPV6_MIN_MTU if ipv6_underlay else IPV4_MIN_MTU
    if underlay_mtu < floor:
        family = "IPv6" if ipv6_underlay else "IPv4"
        raise InvalidInput(f"underlay MTU {underlay_mtu} is below the {family} minimum {floor}")
    overhead = WG_OVERHEAD_IPV6 if ipv6_underlay else WG_OVERHEAD_IPV4
    return max(IPV6_MIN_MTU, underlay_mtu - overhead)


def wireguard_mtu(local_mtu: int, path_mtus: Sequence[int], ipv6_underlay: bool) -> int:
    """The effective WireGuard MTU: the narrowest of the local link and every path."""
    return overlay_mtu(min([local_mtu, *path_mtus]), ipv6_underlay)


def path_mtu(peer_addr: str, netns: str | None = None, *, max_mtu: int | None = None) -> int:
    """The largest packet that reaches ``peer_addr`` unfragmented, from ``netns``.

    ``max_mtu`` defaults to the MTU of the link the route to the peer leaves by.
    Raises ``Unreachable`` when even a minimum-size packet gets no answer.
    """
    try:
        address = ipaddress.ip_address(peer_addr)
    except ValueError as exc:
        raise InvalidInput(f"path MTU: {peer_addr!r} is not an IP address (no port, no brackets)") from exc
    floor = IPV6_MIN_MTU if address.version == 6 else IPV4_MIN_MTU
    ceiling = max_mtu or links.route_device(str(address), netns).mtu
    if not _probe(address, floor, netns, patient=True)[0]:
        raise Unreachable(f"{address} does not answer ping from netns {netns or '(current)'}")
    return _search(address, netns, floor, ceiling)


def narrow(good: int, bad: int, size: int, ok: bool, hint: int | None) -> tuple[int, int]:
    """Pure: the new window after probing ``size``; ``good`` passed, ``bad`` did not.

    A "packet too big"/"message too long" naming an MTU below the probe caps
    the window at that MTU (the next probe then checks exactly it).
    """
    if ok:
        return size, bad
    if hint is not None and good <= hint < size:
        return good, hint + 1
    return good, size


def next_probe(good: int, bad: int, top_first: bool) -> int:
    """Pure: the top of the window when it is a likely answer, else the midpoint."""
    return bad - 1 if top_first else (good + bad) // 2


def _search(address: IPAddress, netns: str | None, good: int, ceiling: int) -> int:
    """Probe the ceiling (usually the answer), a hinted MTU, then bisect; all bounded."""
    bad, size = ceiling + 1, ceiling
    deadline = time.monotonic() + SEARCH_DEADLINE
    for _ in range(MAX_PROBES):
        if bad - good <= 1:
            return good
        if time.monotonic() > deadline:
            break
        ok, hint = _probe(address, size, netns)
        good, bad = narrow(good, bad, size, ok, hint)
        size = next_probe(good, bad, top_first=not ok and bad - 1 == hint)
    if bad - good <= 1:
        return good
    raise ToolError(f"path MTU to {address}: no answer between {good} and {bad} in time")


def _probe(
    address: IPAddress, mtu: int, netns: str | None, *, patient: bool = False
) -> tuple[bool, int | None]:
    """One ping of exactly ``mtu`` bytes with DF: (answered, MTU named by an error)."""
    payload = mtu - ICMP_OVERHEAD[address.version]
    timing = ["-c", "1", "-w", "3", "-i", "0.2"] if patient else ["-c", "2", "-i", "0.1", "-W", "1"]
    argv = ["ping", "-n", "-M", "do", "-s", str(payload), *timing, str(address)]
    code, output = probe_in_netns(argv, netns, timeout=5.0)
    if code not in (0, 1):
        raise ToolError(f"ping {address}: {output.strip()}")
    hints = [int(m) for m in _MTU_HINT.findall(output)]
    return code == 0, min(hints) if hints else None
