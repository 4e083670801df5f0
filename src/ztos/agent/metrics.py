"""The counters an agent reports after each pass (``PUT /api/v1/nodes/self/metrics``).

Per WireGuard peer: bytes received and sent and the handshake age, read
from the interface (``ztos.dataplane.observe``). wireguard-go's UAPI counts
bytes only, so peer packet counts are left out (``None``) rather than
guessed. Per tenant: bytes and packets of the tenant's VXLAN device
(``zt-v<VNI>``), i.e. the tenant's traffic over the mesh, read from
``/proc/net/dev`` of the agent's own network namespace (the netlink adapter
does not expose link statistics yet). Per pass: how long the reconcile took
and how many passes failed since the agent started.

Reporting is best effort: a controller that does not know the route yet, or
a failed read, costs a log line, never the pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ztos.agent.tenants import DEVICE_PREFIX
from ztos.client import ApiClient
from ztos.controller.metrics import MetricsReport, PeerCounters, TenantCounters
from ztos.dataplane import ObservedInterface, observe
from ztos.errors import ZtosError
from ztos.netmap import NodeMap

log = logging.getLogger("ztos.agent")
PROC_NET_DEV = Path("/proc/net/dev")


@dataclass(frozen=True)
class LinkCounters:
    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int


def parse_net_dev(text: str) -> dict[str, LinkCounters]:
    """``/proc/net/dev`` -> counters by interface name (two header lines, then one per link)."""
    counters = {}
    for line in text.splitlines()[2:]:
        name, sep, numbers = line.partition(":")
        fields = numbers.split()
        if not sep or len(fields) < 10:
            continue
        rx_bytes, rx_packets, tx_bytes, tx_packets = (int(fields[i]) for i in (0, 1, 8, 9))
        counters[name.strip()] = LinkCounters(rx_bytes, rx_packets, tx_bytes, tx_packets)
    return counters


def read_link_counters(path: Path = PROC_NET_DEV) -> dict[str, LinkCounters]:
    """Counters of this network namespace's links; empty when unreadable."""
    try:
        return parse_net_dev(path.read_text())
    except OSError as exc:
        log.info("link counters unavailable: %s", exc)
        return {}


def peer_counters(observed: ObservedInterface, node_map: NodeMap, now: float) -> list[PeerCounters]:
    """WireGuard peers by node name (the key when a peer is not in the node map)."""
    names = {peer.public_key: peer.name for peer in node_map.peers}
    return [
        PeerCounters(
            peer=names.get(peer.public_key, peer.public_key),
            rx_bytes=peer.rx_bytes,
            tx_bytes=peer.tx_bytes,
            handshake_age_seconds=handshake_age(peer.last_handshake, now),
        )
        for peer in observed.peers
    ]


def handshake_age(last_handshake: float | None, now: float) -> float | None:
    return None if last_handshake is None else max(0.0, now - last_handshake)


def tenant_counters(node_map: NodeMap, links: dict[str, LinkCounters]) -> list[TenantCounters]:
    out = []
    for tenant in node_map.tenants:
        link = links.get(f"{DEVICE_PREFIX}v{tenant.vni}")
        if link is not None:
            out.append(
                TenantCounters(
                    tenant=tenant.name,
                    vni=tenant.vni,
                    rx_bytes=link.rx_bytes,
                    tx_bytes=link.tx_bytes,
                    rx_packets=link.rx_packets,
                    tx_packets=link.tx_packets,
                )
            )
    return out


@dataclass
class ReconcileCounters:
    """Duration of the last reconcile and failed passes since the agent started."""

    errors_total: int = 0
    last_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic

    @contextmanager
    def timing(self) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        except Exception:
            self.errors_total += 1
            raise
        finally:
            self.last_seconds = self.clock() - start


@dataclass
class MetricsReporter:
    ifname: str
    interval: float
    reconcile: ReconcileCounters = field(default_factory=ReconcileCounters)
    observe_interface: Callable[[str], ObservedInterface] = observe
    read_links: Callable[[], dict[str, LinkCounters]] = read_link_counters
    _warned: bool = False

    def report(self, node_map: NodeMap) -> MetricsReport:
        return MetricsReport(
            interval_seconds=self.interval,
            reconcile_seconds=self.reconcile.last_seconds,
            reconcile_errors_total=self.reconcile.errors_total,
            peers=peer_counters(self.observe_interface(self.ifname), node_map, time.time()),
            tenants=tenant_counters(node_map, self.read_links()) if node_map.tenants else [],
        )

    def send(self, client: ApiClient, node_map: NodeMap) -> None:
        try:
            body = self.report(node_map).model_dump(mode="json")
            client.request("PUT", "/api/v1/nodes/self/metrics", json=body)
            self._warned = False
        except (ZtosError, ValueError) as exc:
            if not self._warned:
                log.warning("metrics not reported: %s", getattr(exc, "detail", exc))
            self._warned = True
