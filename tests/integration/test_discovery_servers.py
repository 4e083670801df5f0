"""Contract suite: the embedded server and BIND 9 must behave the same for ZTOS clients.

Each test runs against both servers, built from the same zone, keys, policy
table and transfer ACL, on a free port on 127.0.0.1 (no namespaces needed).
The embedded server runs in a thread of this process; BIND runs as a child
``named -g`` in a temporary state directory. The fixture stops the server and
removes the directory whatever the test does.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from ztos.discovery import (
    Authority,
    DnsServer,
    DnsUpdater,
    EngineSettings,
    Policy,
    TransferAcl,
    Zone,
    host_grants,
    network_policy,
    new_tsig_key,
    new_zone,
    records,
)
from ztos.discovery import names as n
from ztos.discovery.bind import BindServer, free_port
from ztos.discovery.keys import sign_at, tsig_key
from ztos.errors import Forbidden

pytestmark = pytest.mark.integration

ZONE = n.zone_origin("contract")
LOCALHOST = "127.0.0.1"


@dataclass
class Served:
    server: Authority
    keys: dict[str, tuple[str, str]]

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def updater(self, who: str) -> DnsUpdater:
        host, port = self.address
        return DnsUpdater(host, port, ZONE, *self.keys[who], timeout=3)

    def resolve(self, name: str, rdtype: str) -> list[str]:
        return self.updater("ctl").resolve(name, rdtype)

    def serial(self) -> int:
        return int(self.resolve("@", "SOA")[0].split()[2])

    def exchange(self, wire: bytes) -> dns.message.Message:
        """Send raw bytes over TCP; the reply parsed without checking its TSIG."""
        with socket.create_connection(self.address, timeout=3) as sock:
            dns.query.send_tcp(sock, wire)
            reply, _ = dns.query.receive_tcp(sock, time.time() + 3, keyring=False)
        return reply


@dataclass(frozen=True)
class Setup:
    """The same zone, keys, policy and transfer ACL for either server."""

    zone: Zone
    keys: dict[str, tuple[str, str]]
    policy: Policy
    transfer: TransferAcl

    @classmethod
    def fresh(cls) -> Setup:
        keys = {
            "h1": new_tsig_key(n.host_key_name("h1", ZONE)),
            "h2": new_tsig_key(n.host_key_name("h2", ZONE)),
            "ctl": new_tsig_key(n.controller_key_name(ZONE)),
        }
        zone = new_zone(ZONE, [ipaddress.ip_address(LOCALHOST)])
        acl = TransferAcl(keys=frozenset({n.controller_key_name(ZONE)}))
        return cls(zone, keys, network_policy(ZONE, ["h1", "h2"]), acl)


def start_embedded(workdir: Path, setup: Setup) -> Authority:
    settings = EngineSettings(transfer=setup.transfer)
    server = DnsServer(setup.zone, dict(setup.keys.values()), setup.policy, settings=settings)
    return server.run_in_thread(LOCALHOST, 0)


def start_bind(workdir: Path, setup: Setup) -> Authority:
    if shutil.which("named") is None or shutil.which("named-checkconf") is None:
        pytest.skip("BIND 9 is not installed (apt-get install bind9 bind9-dnsutils; make deps)")
    keys = dict(setup.keys.values())
    server = BindServer(
        workdir / "bind", setup.zone, keys, setup.policy, port=free_port(), transfer=setup.transfer
    )
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


STARTERS = {"embedded": start_embedded, "bind": start_bind}


@pytest.fixture(params=sorted(STARTERS))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    workdir = Path(tempfile.mkdtemp(prefix="ztos-dns-"))
    setup = Setup.fresh()
    server: Authority | None = None
    try:
        server = STARTERS[request.param](workdir, setup)
        yield Served(server, dict(setup.keys))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_host_registers_its_addresses_and_wireguard_service(served: Served) -> None:
    h1 = served.updater("h1")
    h1.replace_host("h1", "fd00:5a::1", "10.90.0.1")
    h1.register_service("h1", "wireguard", "udp", 51820, {"pk": "abc="})
    assert served.resolve("h1", "AAAA") == ["fd00:5a::1"]
    assert served.resolve("h1", "A") == ["10.90.0.1"]
    assert served.resolve("_wireguard._udp.h1", "SRV") == [f"0 0 51820 h1.{ZONE}"]
    assert served.resolve("_wireguard._udp.h1", "TXT") == ['"pk=abc="']
    h1.replace_host("h1", "fd00:5a::2", None)  # replace, not add
    assert served.resolve("h1", "AAAA") == ["fd00:5a::2"] and served.resolve("h1", "A") == []


def test_a_host_key_cannot_touch_another_hosts_name(served: Served) -> None:
    serial = served.serial()
    with pytest.raises(Forbidden, match="REFUSED"):
        served.updater("h1").replace_host("h2", "fd00:5a::66", None)
    assert served.serial() == serial and served.resolve("h2", "AAAA") == []


def test_unsigned_update_is_refused(served: Served) -> None:
    reply = served.exchange(records.replace_host(ZONE, "h1", "fd00:5a::66", None).to_wire())
    assert reply.rcode() == dns.rcode.REFUSED and served.resolve("h1", "AAAA") == []


def test_wrong_secret_is_refused(served: Served) -> None:
    serial = served.serial()
    host, port = served.address
    forged = DnsUpdater(host, port, ZONE, served.keys["h1"][0], new_tsig_key("x.")[1], timeout=3)
    with pytest.raises(Forbidden, match="BADSIG"):
        forged.replace_host("h1", "fd00:5a::66", None)
    assert served.serial() == serial and served.resolve("h1", "AAAA") == []


def test_old_or_replayed_update_is_refused(served: Served) -> None:
    serial = served.serial()
    message = records.replace_host(ZONE, "h1", "fd00:5a::66", None)
    captured_an_hour_ago = sign_at(message, tsig_key(*served.keys["h1"]), int(time.time()) - 3600)
    for _ in range(2):
        reply = served.exchange(captured_an_hour_ago)
        assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig_error == dns.rcode.BADTIME
    assert served.serial() == serial and served.resolve("h1", "AAAA") == []


def test_removed_key_stops_working_and_added_key_starts(served: Served) -> None:
    h2 = served.updater("h2")
    h2.replace_host("h2", "fd00:5a::2", None)
    served.server.remove_key(served.keys["h2"][0])
    with pytest.raises(Forbidden, match="BADKEY"):
        h2.replace_host("h2", "fd00:5a::3", None)
    assert served.resolve("h2", "AAAA") == ["fd00:5a::2"]
    served.keys["h3"] = new_tsig_key(n.host_key_name("h3", ZONE))
    served.server.add_key(*served.keys["h3"], host_grants("h3", ZONE))
    served.updater("h3").replace_host("h3", "fd00:5a::3", None)
    assert served.resolve("h3", "AAAA") == ["fd00:5a::3"]


def test_remove_host_deletes_every_name_of_the_host(served: Served) -> None:
    h1, h2 = served.updater("h1"), served.updater("h2")
    h1.replace_host("h1", "fd00:5a::1", "10.90.0.1")
    h1.register_service("h1", "wireguard", "udp", 51820)
    h1.register_service("h1", "bgp", "tcp", 179)
    h1.register_service("h1", "postgres", "tcp", 5432, ["role=primary"])
    h2.replace_host("h2", "fd00:5a::2", None)
    h1.remove_host("h1")
    for owner in [
        "h1",
        "_wireguard._udp.h1",
        "_bgp._tcp.h1",
        "_postgres._tcp.h1",
        "_services._dns-sd._udp.h1",
    ]:
        assert served.resolve(owner, "ANY") == [], owner
    assert served.resolve("h2", "AAAA") == ["fd00:5a::2"]


def test_controller_transfers_the_zone_and_hosts_cannot(served: Served) -> None:
    served.updater("h1").replace_host("h1", "fd00:5a::1", None)
    ctl = served.updater("ctl")
    ctl.publish_browse("wireguard", "udp", "h1")
    zone = ctl.transfer()
    texts = zone.to_texts()
    assert f"h1.{ZONE} 60 IN AAAA fd00:5a::1" in texts
    assert f"_wireguard._udp.{ZONE} 60 IN PTR _wireguard._udp.h1.{ZONE}" in texts
    assert zone.serial == served.serial()
    with pytest.raises(Forbidden):
        served.updater("h1").transfer()
