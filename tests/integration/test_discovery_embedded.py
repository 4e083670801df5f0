"""Embedded-server-only behaviour: DNS64, replay cache (also across restarts), persistence, and fuzzing.

The server runs in a thread of this process on a free port of 127.0.0.1; every
server a test starts is stopped and its directory removed in ``finally``.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.update
import pytest

from ztos.controller.dns import DirectoryReplayCache, DnsService, DnsSettings
from ztos.directory.sqlite import SqliteStore
from ztos.discovery import (
    Dns64,
    DnsEngine,
    DnsServer,
    DnsUpdater,
    EngineSettings,
    JsonZoneStore,
    ThreadedDnsServer,
    TransferAcl,
    network_policy,
    new_tsig_key,
    new_zone,
    records,
)
from ztos.discovery import names as n
from ztos.discovery.keys import keyring, sign_at, tsig_key
from ztos.enroll.server import DnsCredentials
from ztos.model import Network

pytestmark = pytest.mark.integration

ZONE = n.zone_origin("embedded")
H1 = new_tsig_key(n.host_key_name("h1", ZONE))
CTL = new_tsig_key(n.controller_key_name(ZONE))
FUZZ_MESSAGES = 10_000
SEED = 20261122


def make_server(store: JsonZoneStore | None = None, dns64: Dns64 | None = None) -> DnsServer:
    settings = EngineSettings(transfer=TransferAcl(keys=frozenset({n.as_name(CTL[0])})), dns64=dns64)
    policy = network_policy(ZONE, ["h1"])
    return DnsServer(new_zone(ZONE), dict([H1, CTL]), policy, store=store, settings=settings)


@contextmanager
def running(server: DnsServer) -> Iterator[ThreadedDnsServer]:
    threaded = server.run_in_thread("127.0.0.1", 0)
    try:
        yield threaded
    finally:
        threaded.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ztos-dns-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def updater(server: ThreadedDnsServer, key: tuple[str, str]) -> DnsUpdater:
    return DnsUpdater(*server.address, ZONE, *key, timeout=3)


def exchange(address: tuple[str, int], wire: bytes) -> dns.message.Message:
    with socket.create_connection(address, timeout=3) as sock:
        dns.query.send_tcp(sock, wire)
        reply, _ = dns.query.receive_tcp(sock, time.time() + 3, keyring=False)
    return reply


def test_dns64_synthesises_aaaa_for_ipv4_only_names() -> None:
    with running(make_server(dns64=Dns64(ipaddress.IPv6Network("fd00:64::/96")))) as server:
        ctl = updater(server, CTL)
        ctl.send(_add_a("legacy", "10.90.0.9"), "add legacy A")
        assert ctl.resolve("legacy", "AAAA") == ["fd00:64::a5a:9"]
        assert ctl.resolve("legacy", "A") == ["10.90.0.9"]
        updater(server, H1).replace_host("h1", "fd00:5a::1", "10.90.0.1")
        assert ctl.resolve("h1", "AAAA") == ["fd00:5a::1"]  # a real AAAA is never replaced


def _add_a(host: str, address: str) -> dns.update.UpdateMessage:
    message = dns.update.UpdateMessage(ZONE)
    message.replace(n.host_name(host, ZONE), 60, "A", address)
    return message


def test_an_identical_resent_update_is_refused() -> None:
    with running(make_server()) as server:
        wire = sign_at(records.replace_host(ZONE, "h1", "fd00:5a::1", None), tsig_key(*H1), int(time.time()))
        assert exchange(server.address, wire).rcode() == dns.rcode.NOERROR
        serial = server.zone.serial
        assert exchange(server.address, wire).rcode() == dns.rcode.REFUSED
        assert server.zone.serial == serial


def test_zone_survives_a_restart(workdir: Path) -> None:
    store = JsonZoneStore(workdir / "zone.json")
    with running(make_server(store)) as server:
        h1 = updater(server, H1)
        h1.replace_host("h1", "fd00:5a::1", "10.90.0.1")
        h1.register_service("h1", "wireguard", "udp", 51820)
        before = server.zone.to_texts()
    with running(make_server(store)) as server:
        assert server.zone.to_texts() == before
        assert updater(server, H1).resolve("_wireguard._udp.h1", "SRV") == [f"0 0 51820 h1.{ZONE}"]


# --- replays across a controller restart -------------------------------------------------------------


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (``DnsSettings`` needs a fixed one)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, suppress(OSError):
                tcp.bind(("127.0.0.1", port))
                return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")


ZH3_NETWORK = Network(
    name="zh3",
    ula_prefix=ipaddress.IPv6Network("fd00:5a::/48"),
    ipv4_prefix=ipaddress.IPv4Network("10.90.0.0/16"),
)


@contextmanager
def controller_dns(directory: Path) -> Iterator[DnsService]:
    """The controller's embedded DNS over the directory file, as ``ztos controller`` runs it."""
    store = SqliteStore(str(directory / "directory.db"))
    settings = DnsSettings("embedded", "127.0.0.1", _free_port(), "127.0.0.1", directory)
    service = DnsService(store, settings, [])
    try:
        service.start(ZH3_NETWORK)
        yield service
    finally:
        service.stop()
        store.close()


def _owner(service: DnsService, creds: DnsCredentials) -> DnsUpdater:
    port = service.settings.port
    return DnsUpdater("127.0.0.1", port, creds.zone, creds.key_name, creds.secret, timeout=3)


def test_update_replayed_after_a_controller_restart_is_refused(workdir: Path) -> None:
    with controller_dns(workdir) as service:
        creds = service.credentials_for("h1")
        update = records.replace_host(n.as_name(creds.zone), "h1", "fd00:5a::1", None)
        captured = sign_at(update, tsig_key(creds.key_name, creds.secret), int(time.time()))
        assert exchange(("127.0.0.1", service.settings.port), captured).rcode() == dns.rcode.NOERROR
        _owner(service, creds).remove_host("h1")  # the capture must not bring the record back
    with controller_dns(workdir) as service:
        before = service.records().records
        assert exchange(("127.0.0.1", service.settings.port), captured).rcode() == dns.rcode.REFUSED
        assert service.records().records == before
        owner = _owner(service, creds)
        assert owner.resolve("h1", "AAAA") == []
        owner.replace_host("h1", "fd00:5a::2", None)  # fresh updates of the owner still work
        assert owner.resolve("h1", "AAAA") == ["fd00:5a::2"]


def _rcode(engine: DnsEngine, wire: bytes) -> dns.rcode.Rcode:
    return dns.message.from_wire(engine.handle(wire, "127.0.0.1")[0], keyring=False).rcode()


def test_replicas_over_one_directory_refuse_each_others_replays(workdir: Path) -> None:
    path = str(workdir / "directory.db")
    with SqliteStore(path) as first_store, SqliteStore(path) as second_store:
        first, second = (
            DnsEngine(
                new_zone(ZONE),
                keyring(dict([H1])),
                network_policy(ZONE, ["h1"]),
                replays=DirectoryReplayCache(store, ZONE.to_text(), 600),
            )
            for store in (first_store, second_store)
        )
        wire = sign_at(records.replace_host(ZONE, "h1", "fd00:5a::1", None), tsig_key(*H1), int(time.time()))
        assert _rcode(first, wire) == dns.rcode.NOERROR
        assert _rcode(second, wire) == dns.rcode.REFUSED
        assert second.zone.serial == new_zone(ZONE).serial


# --- fuzzing ---------------------------------------------------------------------------------------


def seeds() -> list[bytes]:
    """Valid messages of every kind the server handles, to mutate."""
    query = dns.message.make_query(n.host_name("h1", ZONE), "AAAA", use_edns=0)
    update = records.register_service(ZONE, "h1", "wireguard", "udp", 51820, {"pk": "x"})
    axfr = dns.message.make_query(ZONE, "AXFR")
    now = int(time.time())
    return [
        query.to_wire(),
        dns.message.make_query(ZONE, "SOA").to_wire(),
        sign_at(update, tsig_key(*H1), now),
        sign_at(axfr, tsig_key(*CTL), now),
        update.to_wire(),
    ]


Mutator = Callable[[random.Random, bytes], bytes]


def _random_bytes(rng: random.Random, _: bytes) -> bytes:
    return rng.randbytes(rng.randrange(0, 600))


def _truncate(rng: random.Random, wire: bytes) -> bytes:
    return wire[: rng.randrange(0, len(wire))]


def _flip(rng: random.Random, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randrange(1, 9)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _counts(rng: random.Random, wire: bytes) -> bytes:
    counts = struct.pack("!HHHH", *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
    return wire[:4] + counts + wire[12:]


def _insert(rng: random.Random, wire: bytes) -> bytes:
    at = rng.randrange(len(wire))
    return wire[:at] + rng.randbytes(rng.randrange(1, 32)) + wire[at:]


def _pointer_loop(rng: random.Random, wire: bytes) -> bytes:
    return wire[:12] + b"\xc0\x0c" + wire[14:]  # a name that points at itself


MUTATORS: list[Mutator] = [_random_bytes, _truncate, _flip, _counts, _insert, _pointer_loop]


def fuzz_messages(count: int, seed: int = SEED) -> Iterator[bytes]:
    rng, base = random.Random(seed), seeds()
    for _ in range(count):
        yield rng.choice(MUTATORS)(rng, rng.choice(base))


def test_engine_survives_fuzzing_without_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    engine = DnsEngine(new_zone(ZONE), keyring(dict([H1, CTL])), network_policy(ZONE, ["h1"]))
    caplog.set_level(logging.ERROR, logger="ztos.discovery.server")
    for i, wire in enumerate(fuzz_messages(FUZZ_MESSAGES)):
        for reply in engine.handle(wire, "127.0.0.1", tcp=bool(i % 2)):
            assert len(reply) >= 12
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


def test_server_answers_after_10000_hostile_packets() -> None:
    with running(make_server()) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.02)
            batch: list[bytes] = []
            for wire in fuzz_messages(FUZZ_MESSAGES, SEED + 1):
                batch.append(wire)
                if len(batch) == 200:
                    _send_batch(sock, server.address, batch)
                    batch = []
            _send_batch(sock, server.address, batch)
        _tcp_abuse(server.address, random.Random(SEED + 2))
        assert updater(server, CTL).resolve("@", "SOA"), "no answer after fuzzing"


def _send_batch(sock: socket.socket, address: tuple[str, int], batch: list[bytes]) -> None:
    for wire in batch:
        sock.sendto(wire, address)
    try:
        while sock.recv(65535):
            pass
    except TimeoutError:
        pass


def _tcp_abuse(address: tuple[str, int], rng: random.Random) -> None:
    """Frames with lying lengths, half frames and abrupt closes."""
    for wire in fuzz_messages(300, rng.randrange(1 << 30)):
        with socket.create_connection(address, timeout=1) as sock:
            length = rng.choice([len(wire), len(wire) + 5, max(0, len(wire) - 3), 65535])
            sock.sendall(struct.pack("!H", length) + wire)
            sock.shutdown(socket.SHUT_WR)
            with suppress(TimeoutError, ConnectionError):
                sock.recv(65535)
