"""The controller's service layer without HTTP: refusals are audited and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.controller import Controller, initialise_network
from ztos.directory.sqlite import SqliteStore
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import EnrollRequest, TokenRequest
from ztos.errors import Conflict, TokenRefused
from ztos.keys import generate_wg_keypair
from ztos.model import Node, Role


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def controller(tmp_path: Path, clock: Clock) -> Iterator[Controller]:
    store = SqliteStore(str(tmp_path / "dir.db"))
    initialise_network(store, tmp_path / "pki", IdentityDir(tmp_path / "admin"), "test", 24 * 3600)
    yield Controller(
        store, pki.CertificateAuthority.load(tmp_path / "pki"), ["https://localhost:8443"], clock
    )
    store.close()


def request_for(token: str, name: str, key: pki.PrivateKey | None = None) -> EnrollRequest:
    csr = pki.make_csr(key or pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
    return EnrollRequest(
        token=token, node_name=name, csr_pem=csr, wg_public_key=generate_wg_keypair().public_key
    )


def test_expired_token_is_refused_audited_and_changes_nothing(controller: Controller, clock: Clock) -> None:
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1", ttl_seconds=600))
    revision = controller.store.revision()
    clock.now += timedelta(minutes=11)
    with pytest.raises(TokenRefused) as refused:
        controller.enroll(request_for(created.token, "h1"), "192.0.2.1")
    assert refused.value.code == "token_expired"
    assert controller.store.revision() == revision, "no record written"
    last = controller.audit_log(0, 100)[-1]
    assert (last.action, last.outcome) == ("enroll", "refused") and "token_expired" in last.detail


def test_second_node_with_same_name_or_key_is_a_conflict(controller: Controller) -> None:
    first = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    controller.enroll(request_for(first.token, "h1"), "x")
    second = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    with pytest.raises(Conflict, match="already enrolled"):
        controller.enroll(request_for(second.token, "h1"), "x")


def test_renewal_keeps_identity_and_wireguard_key(controller: Controller, clock: Clock) -> None:
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    key = pki.generate_private_key()
    response = controller.enroll(request_for(created.token, "h1", key), "x")
    identity = pki.identity_of(pki.cert_from_pem(response.certificate_pem))
    csr = pki.make_csr(key, "h1").public_bytes(Encoding.PEM).decode()
    renewed = pki.identity_of(pki.cert_from_pem(controller.renew(identity, csr)))
    assert (renewed.name, renewed.role, renewed.wg_public_key) == ("h1", Role.NODE, identity.wg_public_key)
    assert renewed.serial != identity.serial
    node = controller.store.get(Node, "h1")
    assert node is not None and node.cert_serial == renewed.serial


def test_revocation_covers_every_certificate_of_the_node(controller: Controller) -> None:
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    response = controller.enroll(request_for(created.token, "h1"), "x")
    controller.revoke_node("admin:admin", "h1", "test")
    serial = pki.serial_hex(pki.cert_from_pem(response.certificate_pem))
    assert serial in {s for s, _ in controller.revoked_serials()}
    assert controller.security_status().nodes_revoked == 1
