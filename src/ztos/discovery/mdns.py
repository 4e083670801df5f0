"""Local discovery with mDNS/DNS-SD (python-zeroconf): the only module importing zeroconf.

Each agent announces ``<node>._ztos._udp.local.`` on its underlay links with
its WireGuard port and, in TXT, its public key, certificate serial and
network; it browses for the others. What it hears is only a *claim*: the
agent trusts a sighting only when the node map (the directory) confirms the
name, key and certificate serial (``ztos.agent.local``). Nothing here decides.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from ztos.errors import InvalidInput, ToolError

log = logging.getLogger("ztos.discovery.mdns")
SERVICE_TYPE = "_ztos._udp.local."


@dataclass(frozen=True)
class Announcement:
    node: str
    port: int
    wg_public_key: str
    cert_serial: str
    network: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Sighting:
    """What another host claims about itself on the local link."""

    node: str
    port: int
    wg_public_key: str
    cert_serial: str
    network: str
    addresses: tuple[str, ...]


def _info(announcement: Announcement) -> ServiceInfo:
    packed = [
        socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in announcement.addresses
    ]
    return ServiceInfo(
        SERVICE_TYPE,
        f"{announcement.node}.{SERVICE_TYPE}",
        addresses=packed,
        port=announcement.port,
        properties={
            "pk": announcement.wg_public_key,
            "serial": announcement.cert_serial,
            "net": announcement.network,
        },
        server=f"{announcement.node}.local.",
    )


def sighting_of(info: ServiceInfo) -> Sighting | None:
    """Parse a resolved service; malformed announcements are dropped, not trusted."""
    props = {
        k.decode(errors="replace"): (v or b"").decode(errors="replace") for k, v in info.properties.items()
    }
    node = info.name.removesuffix(f".{SERVICE_TYPE}")
    addresses = tuple(str(ipaddress.ip_address(raw)) for raw in info.addresses_by_version(IPVersion.All))
    if not info.port or not props.get("pk") or not props.get("serial"):
        return None
    return Sighting(node, info.port, props["pk"], props["serial"], props.get("net", ""), addresses)


class _Collector(ServiceListener):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, Sighting] = {}

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._resolve(zc, type_, name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._resolve(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self.lock:
            self.seen.pop(name, None)

    def _resolve(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=2000)
        sighting = sighting_of(info) if info is not None else None
        if sighting is not None:
            with self.lock:
                self.seen[name] = sighting


class LocalDiscovery:
    """Announce this host and collect the others' announcements, on every interface of this namespace."""

    def __init__(self) -> None:
        try:
            self.zeroconf = Zeroconf(ip_version=IPVersion.All)
        except OSError as exc:
            raise ToolError(f"mDNS unavailable: {exc}") from exc
        self.collector = _Collector()
        self.browser = ServiceBrowser(self.zeroconf, SERVICE_TYPE, self.collector)
        self.announced: Announcement | None = None

    def announce(self, announcement: Announcement) -> None:
        if announcement == self.announced:
            return
        if not announcement.addresses:
            raise InvalidInput("mDNS: nothing to announce without an underlay address")
        info = _info(announcement)
        if self.announced is None:
            self.zeroconf.register_service(info, allow_name_change=False)
        else:
            self.zeroconf.update_service(info)
        self.announced = announcement

    def sightings(self) -> list[Sighting]:
        with self.collector.lock:
            return list(self.collector.seen.values())

    def close(self) -> None:
        self.browser.cancel()
        self.zeroconf.close()
