"""Enrolment's address and key indexes: unique, lowest free first, no node list per enrolment."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import addressing, pki
from ztos.controller import Controller, initialise_network
from ztos.directory.sqlite import SqliteStore, SqliteTransaction
from ztos.enroll import allocation
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import EnrollRequest, TokenRequest
from ztos.errors import Conflict
from ztos.keys import generate_wg_keypair
from ztos.model import Node


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    store = SqliteStore(str(tmp_path / "dir.db"))
    initialise_network(store, tmp_path / "pki", IdentityDir(tmp_path / "admin"), "test", 24 * 3600)
    yield Controller(store, pki.CertificateAuthority.load(tmp_path / "pki"), ["https://localhost:8443"])
    store.close()


def enrol(controller: Controller, name: str, wg_key: str | None = None) -> Node:
    token = controller.create_token("admin:admin", TokenRequest(node_name=name)).token
    csr = pki.make_csr(pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
    key = wg_key or generate_wg_keypair().public_key
    request = EnrollRequest(token=token, node_name=name, csr_pem=csr, wg_public_key=key)
    node = controller.enroll(request, "test").node
    assert node is not None
    return node


def host(controller: Controller, index: int) -> ipaddress.IPv4Address:
    return addressing.ipv4_host(controller.network().ipv4_prefix, index)


@pytest.mark.parametrize("prefix", ["10.9.0.0/16", "10.9.0.0/29", "10.9.0.0/31", "10.9.0.7/32"])
def test_host_index_matches_the_prefix_hosts(prefix: str) -> None:
    network = ipaddress.IPv4Network(prefix)
    hosts = list(network.hosts())
    assert addressing.ipv4_host_count(network) == len(hosts)
    assert [addressing.ipv4_host(network, i) for i in range(len(hosts))] == hosts
    assert [addressing.ipv4_host_index(network, a) for a in hosts] == list(range(len(hosts)))
    assert addressing.ipv4_host_index(network, network.broadcast_address + 1) is None


def test_addresses_are_unique_lowest_first_and_a_deleted_one_is_reused(controller: Controller) -> None:
    nodes = [enrol(controller, f"h{i}") for i in range(5)]
    assert [n.overlay_ipv4 for n in nodes] == [host(controller, 9 + i) for i in range(5)]  # .10 on
    controller.delete_node("admin:admin", "h1")
    controller.delete_node("admin:admin", "h3")
    assert enrol(controller, "h5").overlay_ipv4 == nodes[1].overlay_ipv4, "lowest free: h1's"
    assert enrol(controller, "h6").overlay_ipv4 == nodes[3].overlay_ipv4
    assert enrol(controller, "h7").overlay_ipv4 == host(controller, 14), "then past the highest"


def test_a_key_held_by_another_node_is_a_conflict_until_that_node_is_deleted(controller: Controller) -> None:
    key = generate_wg_keypair().public_key
    enrol(controller, "h1", key)
    with pytest.raises(Conflict, match="already belongs to another node"):
        enrol(controller, "h2", key)
    controller.delete_node("admin:admin", "h1")
    assert enrol(controller, "h2", key).wg_public_key == key


def test_a_revoked_node_enrolling_again_keeps_its_address(controller: Controller) -> None:
    first = enrol(controller, "h1")
    enrol(controller, "h2")
    controller.revoke_node("admin:admin", "h1", "test")
    again = enrol(controller, "h1")
    assert again.overlay_ipv4 == first.overlay_ipv4 and again.wg_public_key != first.wg_public_key
    with pytest.raises(Conflict, match="already enrolled"):
        enrol(controller, "h1")
    assert enrol(controller, "h3", first.wg_public_key).name == "h3", "h1's old key is free again"


def test_enrolment_lists_no_nodes_once_indexed(controller: Controller, monkeypatch: Any) -> None:
    enrol(controller, "h0")
    listed: list[str] = []
    real_list = SqliteTransaction.list

    def spy(self: SqliteTransaction, cls: type[Any]) -> list[Any]:
        listed.append(cls.__name__)
        return real_list(self, cls)

    monkeypatch.setattr(SqliteTransaction, "list", spy)
    for i in range(1, 4):
        enrol(controller, f"h{i}")
    assert "Node" not in listed


def test_a_directory_written_before_the_index_is_indexed_on_first_enrolment(controller: Controller) -> None:
    prefix = controller.network().ipv4_prefix
    old_key = generate_wg_keypair().public_key
    with controller.store.transaction() as tx:  # as enrolment wrote nodes before the index
        tx.put(
            Node(
                name="old",
                wg_public_key=old_key,
                overlay_ipv6=addressing.overlay_ipv6(controller.network().ula_prefix, old_key),
                overlay_ipv4=addressing.ipv4_host(prefix, 9),
                cert_serial="1",
            )
        )
        assert tx.get_state(allocation.CURSOR_SCOPE, str(prefix), 0.0) is None
    with pytest.raises(Conflict, match="already belongs to another node"):
        enrol(controller, "h1", old_key)
    assert enrol(controller, "h1").overlay_ipv4 == addressing.ipv4_host(prefix, 10), ".10 is old's"


def test_a_full_prefix_is_a_conflict_and_a_vanished_node_address_is_reclaimed(controller: Controller) -> None:
    prefix = ipaddress.IPv4Network("10.77.0.0/28")  # hosts .1-.14: .10-.14 are handed out
    with controller.store.transaction() as tx:
        addresses = [allocation.allocate_ipv4(tx, prefix, f"n{i}") for i in range(5)]
        for i, address in enumerate(addresses):
            key = generate_wg_keypair().public_key
            ula = controller.network().ula_prefix
            tx.put(Node(name=f"n{i}", wg_public_key=key, overlay_ipv6=addressing.overlay_ipv6(ula, key),
                        overlay_ipv4=address, cert_serial="1"))  # fmt: skip
        with pytest.raises(Conflict, match="is full"):
            allocation.allocate_ipv4(tx, prefix, "n5")
        tx.delete(Node, "n2")  # gone without release: its lease is stale
        assert allocation.allocate_ipv4(tx, prefix, "n5") == addresses[2]
    assert [str(a) for a in addresses] == [f"10.77.0.{i}" for i in range(10, 15)]


def test_two_replicas_over_one_store_never_hand_out_one_address_twice(
    controller: Controller, tmp_path: Path
) -> None:
    other_store = SqliteStore(str(tmp_path / "dir.db"))
    replica = Controller(other_store, controller.ca, ["https://localhost:8444"])
    try:
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(enrol, (controller, replica)[i % 2], f"r{i}") for i in range(16)]
            nodes = [job.result(timeout=60) for job in jobs]
    finally:
        other_store.close()
    assert len({n.overlay_ipv4 for n in nodes}) == 16
    assert sorted(n.overlay_ipv4 for n in nodes) == [host(controller, 9 + i) for i in range(16)]
