"""The controller's service layer without HTTP: refusals are audited and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.controller import LAST_SEEN_INTERVAL, Controller, initialise_network
from ztos.controller.tenants import (
    TenantRequest,
    WorkloadRequest,
    add_workload,
    create_tenant,
    set_attachment,
)
from ztos.directory.sqlite import SqliteStore
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import EnrollRequest, TokenRequest
from ztos.errors import Conflict, InvalidInput, TokenRefused
from ztos.keys import generate_wg_keypair
from ztos.model import Node, NodeSeen, Role, Tenant, Workload


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


def test_last_seen_is_stored_and_rewritten_once_a_minute(controller: Controller, clock: Clock) -> None:
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    controller.enroll(request_for(created.token, "h1"), "x")
    assert controller.node_view("h1").last_seen is None, "enrolment is not an agent call"
    first = clock.now
    controller.note_seen("h1")
    assert controller.node_view("h1").last_seen == first
    revision = controller.store.revision()
    for _ in range(5):  # every call within the interval: no directory write at all
        clock.now += timedelta(seconds=10)
        controller.note_seen("h1")
    assert controller.store.revision() == revision and controller.node_view("h1").last_seen == first
    clock.now = first + LAST_SEEN_INTERVAL
    controller.note_seen("h1")
    assert controller.node_view("h1").last_seen == clock.now and controller.store.revision() == revision + 1
    assert [n.last_seen for n in controller.node_views()] == [clock.now]


def test_last_seen_of_an_unknown_or_deleted_node_writes_nothing(controller: Controller) -> None:
    revision = controller.store.revision()
    controller.note_seen("ghost")
    assert controller.store.revision() == revision
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    controller.enroll(request_for(created.token, "h1"), "x")
    controller.note_seen("h1")
    controller.delete_node("admin:admin", "h1")
    assert controller.store.get(NodeSeen, "h1") is None


def test_tenants_of_a_node_are_those_that_list_it(controller: Controller) -> None:
    """Membership is kept on the tenant only: a token's tenants join at enrolment,
    and a later attach or detach is what the node's view shows."""
    for name in ("blue", "red"):
        create_tenant(controller.store, "admin:admin", TenantRequest(name=name))
    with pytest.raises(InvalidInput, match="unknown tenant green") as unknown:
        controller.create_token("admin:admin", TokenRequest(node_name="h1", tenants=["green"]))
    assert unknown.value.code == "unknown_tenant"
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1", tenants=["blue"]))
    controller.enroll(request_for(created.token, "h1"), "x")
    assert controller.node_view("h1").tenants == ["blue"]
    assert controller.store.get(Tenant, "blue").nodes == ["h1"]  # type: ignore[union-attr]
    set_attachment(controller.store, "admin:admin", "blue", "h1", attached=False)
    set_attachment(controller.store, "admin:admin", "red", "h1", attached=True)
    assert controller.node_view("h1").tenants == ["red"]
    assert [n.tenants for n in controller.node_views()] == [["red"]]
    assert "tenants" not in controller.store.get(Node, "h1").model_dump()  # type: ignore[union-attr]


def test_a_deleted_node_leaves_its_tenants_and_a_new_host_of_its_name_inherits_none(
    controller: Controller,
) -> None:
    create_tenant(controller.store, "admin:admin", TenantRequest(name="blue"))
    created = controller.create_token("admin:admin", TokenRequest(node_name="h1", tenants=["blue"]))
    controller.enroll(request_for(created.token, "h1"), "x")
    add_workload(controller.store, "admin:admin", WorkloadRequest(tenant="blue", node="h1", name="db"))
    controller.delete_node("admin:admin", "h1")
    assert controller.store.get(Tenant, "blue").nodes == []  # type: ignore[union-attr]
    assert controller.store.get(Workload, "db") is None
    again = controller.create_token("admin:admin", TokenRequest(node_name="h1"))
    controller.enroll(request_for(again.token, "h1"), "x")
    assert controller.node_view("h1").tenants == []
