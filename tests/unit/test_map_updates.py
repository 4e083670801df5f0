"""Incremental node maps: a process's ``NodeMaps`` moved by the feed, and map deltas.

An agent that holds a map is sent only what moved (``netmap.update_for``),
and what it builds from that is checked against the controller's digest
(``netmap.applied``), so a wrong delta costs one full fetch, never a wrong map.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ztos import addressing, netmap
from ztos.api.wakeups import NodeWakeups
from ztos.controller.nodemaps import NodeMaps, node_map
from ztos.directory.sqlite import SqliteStore
from ztos.keys import generate_wg_keypair
from ztos.model import Network, Node, Tenant, Token
from ztos.netmap import HeldMap, MapUpdate, applied, update_for

NETWORK = Network(
    ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"), ipv4_prefix=ipaddress.IPv4Network("10.42.0.0/16")
)
HOSTS = 40
T1 = datetime(2030, 1, 1, tzinfo=UTC)


def node(index: int) -> Node:
    key = generate_wg_keypair().public_key
    return Node(
        name=f"h{index}",
        wg_public_key=key,
        overlay_ipv6=addressing.overlay_ipv6(NETWORK.ula_prefix, key),
        overlay_ipv4=ipaddress.IPv4Address(f"10.42.1.{index}"),
        endpoints=[f"192.0.2.{index}:51820"],
        cert_serial=f"s{index}",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    directory = SqliteStore(str(tmp_path / "dir.db"))
    with directory.transaction() as tx:
        tx.create(NETWORK)
        for index in range(1, HOSTS + 1):
            tx.create(node(index))
    yield directory
    directory.close()


def moved_endpoint(store: SqliteStore, name: str, endpoint: str) -> None:
    with store.transaction() as tx:
        record = tx.get(Node, name)
        assert record is not None
        tx.put(record.model_copy(update={"observed_endpoint": endpoint}))


def fetch(maps: NodeMaps, name: str, held: netmap.NodeMap | None, since: int | None) -> MapUpdate:
    """What the controller answers (``Controller.node_map_update``), over the process's maps."""
    d = maps.directory()
    moved = None if since is None else maps.moved_between(since, d.revision)
    h = HeldMap.of(held, since)
    return update_for(node_map(d, name), d.revision, h.digest, h.rest, moved)


def test_a_peer_moving_sends_one_peer_and_leads_to_the_controllers_map(store: SqliteStore) -> None:
    maps = NodeMaps(store)
    first = fetch(maps, "h1", None, None)
    assert first.kind == "full" and first.map is not None
    held = applied(None, first)
    assert held == first.map
    assert fetch(maps, "h1", held, first.revision).kind == "unchanged"
    moved_endpoint(store, "h7", "198.51.100.7:51820")
    update = fetch(maps, "h1", held, first.revision)
    assert update.kind == "delta" and [p.name for p in update.peers_changed] == ["h7"]
    assert update.rest is None and update.peers_removed == ()
    assert applied(held, update) == node_map(maps.directory(), "h1")
    assert len(update.model_dump_json()) * 10 < len(first.model_dump_json()), "a delta is small"


def test_a_node_leaving_is_removed_and_tenant_changes_send_the_whole_map(store: SqliteStore) -> None:
    maps = NodeMaps(store)
    first = fetch(maps, "h1", None, None)
    held = applied(None, first)
    with store.transaction() as tx:
        tx.delete(Node, "h9")
    update = fetch(maps, "h1", held, first.revision)
    assert update.kind == "delta" and update.peers_removed == ("h9",)
    held = applied(held, update)
    assert held is not None and "h9" not in {p.name for p in held.peers}
    with store.transaction() as tx:
        prefix = ipaddress.IPv6Network("fd12:3456:789a:1::/64")
        tx.create(Tenant(name="corp", vni=100, ipv6_prefix=prefix, nodes=["h1", "h2"]))
    assert fetch(maps, "h1", held, update.revision).kind == "full", "more than peers moved"


def test_a_delta_that_does_not_lead_to_the_map_is_refused(store: SqliteStore) -> None:
    maps = NodeMaps(store)
    first = fetch(maps, "h1", None, None)
    held = applied(None, first)
    assert held is not None
    moved_endpoint(store, "h7", "198.51.100.7:51820")
    d = maps.directory()
    wrong = update_for(node_map(d, "h1"), d.revision, netmap.map_digest(held), None, moved=["h8"])
    assert applied(held, wrong) is None, "h7's move was left out: the digest tells"
    assert applied(None, wrong) is None, "a delta needs a held map"


def test_a_replica_that_cannot_tell_what_moved_sends_the_whole_map(store: SqliteStore) -> None:
    first = fetch(NodeMaps(store), "h1", None, None)
    held = applied(None, first)
    moved_endpoint(store, "h7", "198.51.100.7:51820")
    other = NodeMaps(store)  # started after the agent's revision: no history reaching back
    assert fetch(other, "h1", held, first.revision).kind == "full"
    assert other.concerns("h1", first.revision), "and it wakes whom it cannot judge"


def test_steps_record_who_is_concerned_and_unrelated_records_move_nothing(store: SqliteStore) -> None:
    maps = NodeMaps(store)
    start = maps.directory()
    with store.transaction() as tx:
        tx.create(Token(id="token-one", secret_sha256="0" * 64, node_name="x", created_by="a", expires_at=T1))
    after = maps.directory()
    assert after.revision > start.revision and after.active is start.active, "nothing was rebuilt"
    assert not maps.concerns("h1", start.revision)
    moved_endpoint(store, "h7", "198.51.100.7:51820")
    maps.directory()
    assert maps.concerns("h1", start.revision)
    assert maps.moved_between(start.revision, maps.revision) == frozenset({"h7"})


def test_writes_that_concern_nobody_keep_the_history_reaching_back(store: SqliteStore) -> None:
    maps = NodeMaps(store)
    start = maps.directory()
    for index in range(1500):  # more than the history holds, were each its own step
        with store.transaction() as tx:
            tx.put(
                Token(
                    id=f"token-{index:04}",
                    secret_sha256="0" * 64,
                    node_name="x",
                    created_by="a",
                    expires_at=T1,
                )
            )
        maps.directory()
    assert not maps.concerns("h1", start.revision), "the agent is not woken for 1,500 token writes"
    assert maps.moved_between(start.revision, maps.revision) == frozenset()


def test_a_commit_resumes_only_the_node_watchers_it_concerns(store: SqliteStore) -> None:
    """``api.wakeups``: 40 sleeping node watchers, one host's note changes: one resumes."""
    maps = NodeMaps(store)
    wakeups = NodeWakeups(maps, store.change_signal())

    async def scenario() -> dict[str, float]:
        await wakeups.caught_up()
        since = maps.revision
        loop = asyncio.get_running_loop()

        async def sleeper(name: str) -> float:
            start = loop.time()
            await wakeups.wait(name, since, timeout=3.0)
            return loop.time() - start

        tasks = {f"h{i}": asyncio.create_task(sleeper(f"h{i}")) for i in range(1, HOSTS + 1)}
        for _ in range(200):  # until all are asleep (bounded: 200 turns of the loop)
            if wakeups.waiting == HOSTS:
                break
            await asyncio.sleep(0.01)
        assert wakeups.waiting == HOSTS
        with store.transaction() as tx:
            h7 = tx.get(Node, "h7")
            assert h7 is not None
            tx.put(h7.model_copy(update={"attributes": {"admin.note": "rack 4"}}))
        return {name: await task for name, task in tasks.items()}

    slept = asyncio.run(scenario())
    assert slept.pop("h7") < 1.0, "the host concerned is woken at once"
    assert min(slept.values()) >= 2.9, "no other watcher is resumed before its timeout"
    assert wakeups.woken == 1


def test_a_commit_during_the_first_read_makes_the_next_step_concern_everyone(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole read sees the commit already, so comparing it with the next step would
    find nothing: that step wakes everyone instead of no one."""
    maps, listed = NodeMaps(store), store.list
    first = store.revision()

    def list_and_commit(cls: type[Any]) -> list[Any]:
        if cls is Node and store.revision() == first:
            with store.transaction() as tx:
                h7 = tx.get(Node, "h7")
                assert h7 is not None
                tx.put(h7.model_copy(update={"observed_endpoint": "198.51.100.7:51820"}))
        return listed(cls)

    monkeypatch.setattr(store, "list", list_and_commit)
    maps.directory()  # read at the first revision, holding the commit's record already
    maps.directory()  # the step over that commit
    assert maps.revision == first + 1
    assert maps.concerns("h1", first), "h1 holds h7's old endpoint if it read at the first revision"
    assert maps.moved_between(first, maps.revision) is None
