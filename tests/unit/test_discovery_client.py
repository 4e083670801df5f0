"""Client-side pieces: error mapping, find_controllers, the JSON zone store (in-process server, loopback)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.rcode
import dns.tsig
import pytest

from ztos.discovery import (
    DnsServer,
    DnsUpdater,
    JsonZoneStore,
    ThreadedDnsServer,
    find_controllers,
    network_policy,
    new_tsig_key,
    new_zone,
)
from ztos.discovery import names as n
from ztos.discovery.store import load_zone, save_zone
from ztos.discovery.updates import _translate, check_rcode
from ztos.errors import Conflict, DirectoryError, Forbidden, InvalidInput, ToolError, Unreachable

ZONE = n.zone_origin("lab")
CTL = new_tsig_key(n.controller_key_name(ZONE))


@pytest.fixture
def server() -> Iterator[ThreadedDnsServer]:
    dns_server = DnsServer(new_zone(ZONE), dict([CTL]), network_policy(ZONE, []))
    with dns_server.run_in_thread() as running:
        yield running


@pytest.mark.parametrize(
    ("rcode", "error"),
    [
        (dns.rcode.REFUSED, Forbidden),
        (dns.rcode.NOTAUTH, Forbidden),
        (dns.rcode.YXRRSET, Conflict),
        (dns.rcode.NXDOMAIN, Conflict),
        (dns.rcode.FORMERR, InvalidInput),
        (dns.rcode.NOTZONE, InvalidInput),
        (dns.rcode.SERVFAIL, Unreachable),
        (dns.rcode.NOTIMP, ToolError),
    ],
)
def test_rcodes_map_to_ztos_errors(rcode: dns.rcode.Rcode, error: type[Exception]) -> None:
    with pytest.raises(error, match=dns.rcode.to_text(rcode)):
        check_rcode(rcode, "replace host h1", "127.0.0.1 port 53")


@pytest.mark.parametrize(
    ("exc", "error", "text"),
    [
        (dns.tsig.PeerBadKey(), Forbidden, "BADKEY"),
        (dns.tsig.PeerBadSignature(), Forbidden, "BADSIG"),
        (dns.tsig.PeerBadTime(), Forbidden, "BADTIME"),
        (dns.exception.Timeout(), Unreachable, "unreachable"),
        (ConnectionRefusedError(111, "Connection refused"), Unreachable, "refused"),
        (dns.exception.FormError("bad"), ToolError, "bad answer"),
    ],
)
def test_transport_errors_map_to_ztos_errors(exc: Exception, error: type[Exception], text: str) -> None:
    mapped = _translate(exc, "replace host h1", "127.0.0.1 port 53")
    assert isinstance(mapped, error) and text in str(mapped)


def test_find_controllers_orders_by_priority_then_weight(server: ThreadedDnsServer) -> None:
    host, port = server.address
    updater = DnsUpdater(host, port, ZONE, *CTL)
    assert find_controllers(ZONE.to_text(), host, port) == []
    updater.set_controllers([("ctl2.example.com", 8443), ("ctl1", 443)])
    urls = find_controllers(ZONE.to_text(), host, port)
    assert sorted(urls) == ["https://ctl1.lab.ztos.internal:443", "https://ctl2.example.com:8443"]


def test_unreachable_server_is_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        updater = DnsUpdater("127.0.0.1", port, ZONE, *CTL, timeout=0.5)
        with pytest.raises(Unreachable):
            updater.replace_host("h1", "fd00::1", None)


def test_json_store_round_trip_and_corruption(tmp_path: Path) -> None:
    store = JsonZoneStore(tmp_path / "zone.json")
    zone = new_zone(ZONE, [ipaddress.ip_address("127.0.0.1")])
    assert load_zone(store, zone) is zone  # nothing stored yet
    save_zone(store, zone)
    assert load_zone(store, new_zone(ZONE)).to_texts() == zone.to_texts()
    assert [p.name for p in tmp_path.iterdir()] == ["zone.json"]  # no temporary files left
    (tmp_path / "zone.json").write_text("{not json")
    with pytest.raises(DirectoryError):
        store.load()
    (tmp_path / "zone.json").write_text('{"format": "other"}')
    with pytest.raises(DirectoryError):
        store.load()
