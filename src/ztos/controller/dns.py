"""The network's authoritative DNS, run by the controller and kept in step with the directory.

Two back ends behind one interface (``ztos.discovery.Authority``): the embedded
server (default; its zone persists in the directory) or BIND 9 (``named`` as a
child process, configuration and per-host ``update-policy`` rendered by ZTOS).

Every host gets its own TSIG key at enrolment, allowed to change only its own
names; the controller's key maintains the zone-level records (the browse PTRs
and ``_ztos-api._tcp``) and purges a revoked host's names. Hosts push their own
records with RFC 2136 (``ztos.agent``).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ztos.directory import Store
from ztos.discovery import (
    Authority,
    BindServer,
    Dns64,
    DnsServer,
    DnsUpdater,
    TransferAcl,
    host_grants,
    network_policy,
    new_tsig_key,
    new_zone,
    zone_origin,
)
from ztos.discovery.engine import EngineSettings, replay_window
from ztos.discovery.names import Name, as_name, controller_key_name, host_key_name
from ztos.discovery.policy import Policy
from ztos.discovery.zone import Zone
from ztos.enroll.server import DnsCredentials, DnsZoneView
from ztos.errors import InvalidInput, ZtosError
from ztos.model import DnsZoneRecord, Network, TsigKey

log = logging.getLogger("ztos.controller.dns")
BROWSED_SERVICES = (("wireguard", "udp"),)
CONTROLLER_LABEL = "ztos-api"  # reserved: no node may take this name


def zone_name(network: Network) -> str:
    return zone_origin(network.name, suffix=network.domain + ".").to_text()


@dataclass(frozen=True)
class DnsSettings:
    backend: str  # "embedded" or "bind"
    listen: str  # address the server binds
    port: int
    advertise: str  # address hosts are told to use
    state_dir: Path  # BIND's files
    dns64: Dns64 | None = None  # embedded only: synthesise AAAA for IPv4-only names (for NAT64)

    @classmethod
    def parse(
        cls, listen: str, backend: str, state_dir: Path, advertise: str | None, dns64: str | None = None
    ) -> DnsSettings:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError as exc:
            raise InvalidInput(
                f"--dns-listen {listen!r} must be ADDRESS:PORT, e.g. [2001:db8::1]:53"
            ) from exc
        if backend not in ("embedded", "bind"):
            raise InvalidInput(f"--dns-backend {backend!r} must be 'embedded' or 'bind'")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInput(f"--dns-listen {listen!r} needs a port 1..65535")
        if address.is_unspecified and advertise is None:
            raise InvalidInput("--dns-listen on a wildcard address needs --dns-advertise ADDRESS")
        if dns64 is not None and backend != "embedded":
            raise InvalidInput("--dns64 is an option of the embedded server; BIND has its own dns64 clause")
        return cls(backend, str(address), int(port), advertise or str(address), state_dir, _dns64(dns64))


def _dns64(prefix: str | None) -> Dns64 | None:
    if prefix is None:
        return None
    try:
        return Dns64(ipaddress.IPv6Network(prefix))
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(f"--dns64 {prefix!r}: {exc}") from exc


class DirectoryZoneStore:
    """The embedded server's zone, kept in the directory (``ZoneStore``)."""

    def __init__(self, store: Store, origin: str) -> None:
        self.store, self.origin = store, origin

    def load(self) -> list[str] | None:
        record = self.store.get(DnsZoneRecord, self.origin)
        return None if record is None else list(record.records)

    def save(self, records: Sequence[str]) -> None:
        with self.store.transaction() as tx:
            tx.put(DnsZoneRecord(origin=self.origin, records=list(records)))


class DirectoryReplayCache:
    """The embedded server's replay cache, kept in the directory (``ReplayGuard``).

    In memory, a restart forgot every update seen, so one captured within the
    time window was accepted again. ``claim_once`` makes "seen? then record"
    one insert, so replicas over the same directory also agree on it.
    """

    def __init__(self, store: Store, origin: str, window: float) -> None:
        self.store, self.scope, self.window = store, f"dns-update:{origin}", window

    def check_and_add(self, key: Name, mac: bytes, now: float) -> bool:
        with self.store.transaction() as tx:
            return not tx.claim_once(self.scope, f"{key.to_text()} {mac.hex()}", now, self.window)


class DnsService:
    """Owns the authority for the network's zone and the controller's updater."""

    def __init__(self, store: Store, settings: DnsSettings, controller_urls: list[str]) -> None:
        self.store, self.settings, self.controller_urls = store, settings, controller_urls
        self.authority: Authority | None = None
        self.origin: Name = as_name(".")
        self.updater: DnsUpdater | None = None
        # API handlers run in threads; BIND reconfiguration (render, check, swap,
        # SIGHUP, wait) must not interleave, and neither should key bookkeeping.
        self.lock = threading.Lock()

    @property
    def zone(self) -> str:
        return str(self.origin.to_text())

    def start(self, network: Network) -> None:
        self.origin = as_name(zone_name(network))
        controller_key = self._controller_key()
        keys = {k.key_name: k.secret for k in self.store.list(TsigKey)}
        policy = network_policy(self.origin, [k.host for k in self.store.list(TsigKey) if k.host])
        zone = new_zone(self.origin, [ipaddress.ip_address(self.settings.advertise)])
        transfer = TransferAcl(keys=frozenset({as_name(controller_key.key_name)}))
        self.authority = self._authority(zone, keys, policy, transfer)
        self.updater = DnsUpdater(
            self.settings.advertise,
            self.settings.port,
            self.zone,
            controller_key.key_name,
            controller_key.secret,
        )
        self.publish_controllers()
        log.info(
            "DNS (%s) serving %s on [%s]:%d",
            self.settings.backend,
            self.zone,
            self.settings.listen,
            self.settings.port,
        )

    def _authority(
        self, zone: Zone, keys: dict[str, str], policy: Policy, transfer: TransferAcl
    ) -> Authority:
        if self.settings.backend == "bind":
            server = BindServer(
                self.settings.state_dir,
                zone,
                keys,
                policy,
                listen=self.settings.listen,
                port=self.settings.port,
                transfer=transfer,
            )
            server.start()
            return server
        settings = EngineSettings(transfer=transfer)
        embedded = DnsServer(
            zone,
            keys,
            policy,
            store=DirectoryZoneStore(self.store, self.zone),
            settings=settings,
            replays=DirectoryReplayCache(self.store, self.zone, replay_window(settings)),
        )
        return embedded.run_in_thread(self.settings.listen, self.settings.port)

    def _controller_key(self) -> TsigKey:
        name = controller_key_name(self.origin).to_text()
        existing = self.store.get(TsigKey, name)
        if existing is not None:
            return existing
        key = TsigKey(key_name=name, secret=new_tsig_key(name)[1])
        with self.store.transaction() as tx:
            tx.put(key)
        return key

    def publish_controllers(self) -> None:
        """``_ztos-api._tcp.<zone>`` SRV for every controller URL.

        An SRV target must be a name: a URL with an address literal is published
        as ``ztos-api.<zone>`` with that address (a reserved host label).
        """
        assert self.updater is not None
        targets, v6, v4 = [], None, None
        for url in self.controller_urls:
            parts = urlsplit(url)
            if not parts.hostname or not parts.port:
                continue
            try:
                address = ipaddress.ip_address(parts.hostname)
            except ValueError:
                targets.append((parts.hostname + ".", parts.port))
                continue
            v6, v4 = (str(address), v4) if address.version == 6 else (v6, str(address))
            targets.append((CONTROLLER_LABEL, parts.port))
        if v6 or v4:
            self.updater.replace_host(CONTROLLER_LABEL, v6, v4)
        self.updater.set_controllers(sorted(set(targets)))

    # -- hooks the controller calls ---------------------------------------------------

    def credentials_for(self, host: str) -> DnsCredentials:
        """Create (or replace) a host's key; its secret goes only to that host."""
        with self.lock:
            return self._credentials_for(host)

    def _credentials_for(self, host: str) -> DnsCredentials:
        name = host_key_name(host, self.origin).to_text()
        secret = new_tsig_key(name)[1]
        with self.store.transaction() as tx:
            tx.put(TsigKey(key_name=name, secret=secret, host=host))
        assert self.authority is not None
        self.authority.add_key(name, secret, host_grants(host, self.origin))
        self._browse(host, publish=True)
        return DnsCredentials(
            zone=self.zone,
            server=self.settings.advertise,
            port=self.settings.port,
            key_name=name,
            secret=secret,
        )

    def host_removed(self, host: str) -> None:
        """A revoked or deleted host: its names go, then its key stops working."""
        with self.lock:
            self._host_removed(host)

    def _host_removed(self, host: str) -> None:
        name = host_key_name(host, self.origin).to_text()
        try:
            assert self.updater is not None
            self._browse(host, publish=False)
            self.updater.purge_host(host)
        finally:
            if self.authority is not None:
                self.authority.remove_key(name)
            with self.store.transaction() as tx:
                if tx.get(TsigKey, name) is not None:
                    tx.delete(TsigKey, name)

    def _browse(self, host: str, publish: bool) -> None:
        assert self.updater is not None
        for service, proto in BROWSED_SERVICES:
            try:
                if publish:
                    self.updater.publish_browse(service, proto, host)
                else:
                    self.updater.withdraw_browse(service, proto, host)
            except ZtosError as exc:
                log.warning("browse record for %s: %s", host, exc.detail)

    def location(self) -> tuple[str, str]:
        return self.zone, f"[{self.settings.advertise}]:{self.settings.port}"

    def records(self) -> DnsZoneView:
        """The whole zone, read back by AXFR with the controller's key."""
        assert self.updater is not None
        return DnsZoneView(
            zone=self.zone,
            server=self.settings.advertise,
            port=self.settings.port,
            backend=self.settings.backend,
            records=self.updater.transfer().to_texts(),
        )

    def stop(self) -> None:
        if self.authority is not None:
            self.authority.stop()
            self.authority = None
