"""Contract tests every directory back end must pass (``ztos.directory.store``).

The suite runs once per entry of ``BACKENDS``; adding a back end (LDAP) is one
line there plus a factory that hands out a fresh, empty directory per test.
Multi-process tests reach the directory through ``open_store(location)`` in a
child Python, so they need nothing back-end specific. Tests at the end, under
"SQLite file handling", check what only the SQLite back end has: its file.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ztos.audit import AuditDraft, verify_chain
from ztos.directory import Store, open_store
from ztos.directory.sqlite import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SqliteStore, split_statements
from ztos.directory.store import iter_all_changes
from ztos.errors import Conflict, DirectoryError, NotAZtosDirectory, NotFound, SchemaTooNew
from ztos.model import CertificateRecord, Device, Group, Node, Record, Role, Tenant, Token, User

# --------------------------------------------------------------------------- back ends


@dataclass(frozen=True)
class Backend:
    """A fresh, empty directory: where it is and how to check its storage."""

    name: str
    location: str
    check_integrity: Callable[[str], None]

    def open(self) -> Store:
        return open_store(self.location)


def _sqlite_integrity(location: str) -> None:
    with sqlite3.connect(location) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def _sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", str(tmp_path / "directory.db"), _sqlite_integrity)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": _sqlite_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


# --------------------------------------------------------------------------- sample records

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
WG_KEY = base64.b64encode(bytes(range(32))).decode()


def _node(name: str = "node-a", port: int = 51820) -> Node:
    return Node(
        name=name,
        wg_public_key=WG_KEY,
        overlay_ipv6="fd00::1",
        overlay_ipv4="10.64.0.1",
        endpoints=["192.0.2.1:51820", "[2001:db8::1]:51820"],
        listen_port=port,
        cert_serial="ab12",
        enrolled_at=NOW,
    )


def _token(token_id: str = "tok_abcdefgh", used: bool = False) -> Token:  # noqa: S107
    return Token(
        id=token_id,
        secret_sha256="0" * 64,
        node_name="node-a",
        created_by="admin",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        used_at=NOW if used else None,
    )


def _certificate(serial: str = "1f", revoked: bool = False) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        subject="node-a",
        role=Role.NODE,
        fingerprint_sha256="a" * 64,
        not_before=NOW,
        not_after=NOW + timedelta(days=1),
        revoked_at=NOW if revoked else None,
        revoke_reason="key compromise" if revoked else None,
    )


# (record, the same key with a different body) per kind.
SAMPLES: dict[str, Callable[[], tuple[Record, Record]]] = {
    "user": lambda: (User(name="alice"), User(name="alice", email="alice@example.org")),
    "node": lambda: (_node(), _node(port=51821)),
    "token": lambda: (_token(), _token(used=True)),
    "certificate": lambda: (_certificate(), _certificate(revoked=True)),
    "tenant": lambda: (
        Tenant(name="blue", vni=100, ipv6_prefix="fd00:0:0:1::/64"),
        Tenant(name="blue", vni=100, ipv6_prefix="fd00:0:0:1::/64", nodes=["node-a"]),
    ),
    "group": lambda: (Group(name="ops"), Group(name="ops", members=["alice"])),
}


def _put(store: Store, *records: Record) -> list[int]:
    with store.transaction() as tx:
        return [tx.put(record) for record in records]


# --------------------------------------------------------------------------- CRUD


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_crud_round_trips_every_kind(store: Store, kind: str) -> None:
    original, changed = SAMPLES[kind]()
    cls = type(original)
    with store.transaction() as tx:
        created = tx.create(original)
        assert tx.get(cls, original.key) == original
    assert store.get(cls, original.key) == original
    assert store.list(cls) == [original]
    assert _put(store, changed)[0] > created
    assert store.get(cls, original.key) == changed
    with store.transaction() as tx:
        tx.delete(cls, original.key)
    assert store.get(cls, original.key) is None
    assert store.list(cls) == []


def test_key_field_is_the_address(store: Store) -> None:
    _put(store, _token("tok_12345678"), _certificate("abc"))
    assert store.get(Token, "tok_12345678") == _token("tok_12345678")
    assert store.get(CertificateRecord, "abc") == _certificate("abc")
    assert store.get(Token, "node-a") is None


def test_kinds_are_separate_namespaces(store: Store) -> None:
    _put(store, User(name="same"), Device(name="same"))
    assert store.list(User) == [User(name="same")]
    assert store.list(Device) == [Device(name="same")]
    with store.transaction() as tx:
        tx.delete(User, "same")
    assert store.get(Device, "same") == Device(name="same")


def test_list_is_ordered_by_key(store: Store) -> None:
    _put(store, *(User(name=name) for name in ["carol", "alice", "bob"]))
    assert [user.name for user in store.list(User)] == ["alice", "bob", "carol"]


def test_create_existing_key_conflicts_without_burning_a_revision(store: Store) -> None:
    _put(store, User(name="alice"))
    with store.transaction() as tx:
        with pytest.raises(Conflict, match="user 'alice' already exists"):
            tx.create(User(name="alice", email="x@example.org"))
        rev = tx.create(User(name="bob"))
    assert rev == 2
    assert store.get(User, "alice") == User(name="alice")


def test_delete_missing_key_is_not_found(store: Store) -> None:
    with store.transaction() as tx, pytest.raises(NotFound, match="ghost"):
        tx.delete(User, "ghost")
    assert store.revision() == 0


# --------------------------------------------------------------------------- transactions


class Boom(Exception):
    pass


def test_exception_rolls_back_everything(store: Store) -> None:
    _put(store, User(name="alice"))
    with pytest.raises(Boom), store.transaction() as tx:
        tx.put(User(name="bob"))
        tx.delete(User, "alice")
        tx.audit(AuditDraft(actor="admin", action="user.delete", target="alice"))
        raise Boom
    assert store.list(User) == [User(name="alice")]
    assert store.revision() == 1
    assert [c.rev for c in store.changes(0)] == [1]
    assert store.audit_events() == []


def test_reads_outside_a_transaction_see_committed_data_only(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(User(name="alice"))
        assert tx.get(User, "alice") == User(name="alice")
        assert store.get(User, "alice") is None
        assert store.revision() == 0
    assert store.get(User, "alice") == User(name="alice")


def test_every_write_gets_the_next_revision(store: Store) -> None:
    assert store.revision() == 0
    first = _put(store, User(name="a"), User(name="b"), User(name="a"))
    with store.transaction() as tx:
        second = [tx.delete(User, "a"), tx.create(User(name="c"))]
    assert first + second == [1, 2, 3, 4, 5]
    assert store.revision() == 5


def test_revisions_survive_reopening(backend: Backend) -> None:
    first = backend.open()
    _put(first, User(name="a"), User(name="b"))
    first.close()
    second = backend.open()
    assert second.revision() == 2
    assert second.get(User, "b") == User(name="b")
    assert _put(second, User(name="c")) == [3]
    second.close()


def test_threads_share_one_store(store: Store) -> None:
    revs: list[int] = []

    def writer(tag: str) -> None:
        for i in range(25):
            revs.extend(_put(store, User(name=f"{tag}-{i}")))
            assert store.get(User, f"{tag}-{i}") is not None

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(revs) == list(range(1, 101))
    assert len(store.list(User)) == 100


# --------------------------------------------------------------------------- change feed


def test_changes_are_ordered_filtered_and_limited(store: Store) -> None:
    alice = User(name="alice", email="a@example.org")
    _put(store, alice, Device(name="laptop"))
    with store.transaction() as tx:
        tx.delete(User, "alice")
        tx.put(_token())
    feed = store.changes(0)
    assert [(c.rev, c.kind, c.key, c.op) for c in feed] == [
        (1, "user", "alice", "put"),
        (2, "device", "laptop", "put"),
        (3, "user", "alice", "delete"),
        (4, "token", "tok_abcdefgh", "put"),
    ]
    assert feed[0].data == alice.model_dump(mode="json")
    assert feed[2].data is None
    assert [c.rev for c in store.changes(2)] == [3, 4]
    assert [c.rev for c in store.changes(1, limit=2)] == [2, 3]
    assert store.changes(4) == []


def test_iter_all_changes_pages_through_the_feed(store: Store) -> None:
    _put(store, *(Device(name=f"d{i}") for i in range(7)))
    assert [c.rev for c in iter_all_changes(store, 2, page=2)] == [3, 4, 5, 6, 7]


# --------------------------------------------------------------------------- audit


def test_audit_events_are_chained(store: Store) -> None:
    returned = []
    for i in range(3):
        with store.transaction() as tx:
            tx.put(User(name=f"u{i}"))
            returned.append(tx.audit(AuditDraft(actor="admin", action="user.put", target=f"u{i}")))
    events = store.audit_events()
    assert events == returned
    assert [e.seq for e in events] == [1, 2, 3]
    assert verify_chain(events) is None
    assert events[0].at.tzinfo is not None
    assert store.audit_events(after_seq=1, limit=1) == events[1:2]
    assert [c.kind for c in store.changes(0)] == ["user"] * 3  # audit is not in the feed


def test_audit_rolls_back_with_its_transaction(store: Store) -> None:
    with store.transaction() as tx:
        tx.audit(AuditDraft(actor="admin", action="first"))
    with pytest.raises(Boom), store.transaction() as tx:
        tx.audit(AuditDraft(actor="admin", action="lost"))
        raise Boom
    with store.transaction() as tx:
        tx.audit(AuditDraft(actor="admin", action="second"))
    events = store.audit_events()
    assert [(e.seq, e.action) for e in events] == [(1, "first"), (2, "second")]
    assert verify_chain(events) is None


# --------------------------------------------------------------------------- one-time tokens

T0 = 1_800_000_000.0  # seconds since the epoch; claim_once takes the caller's clock


def _claim(store: Store, token: str, now: float = T0, scope: str = "zh3", ttl: float = 600) -> bool:
    with store.transaction() as tx:
        return tx.claim_once(scope, token, now, ttl)


def test_a_token_is_claimed_once_until_it_expires(store: Store) -> None:
    assert _claim(store, "mac-1") is True
    assert _claim(store, "mac-1", T0 + 599) is False
    assert _claim(store, "mac-2", T0 + 599) is True
    assert _claim(store, "mac-1", T0 + 600) is True  # forgotten after its ttl


def test_token_scopes_are_separate_and_get_no_revision(store: Store) -> None:
    assert _claim(store, "mac", scope="zh3-a") and _claim(store, "mac", scope="zh3-b")
    assert not _claim(store, "mac", scope="zh3-a")
    assert store.revision() == 0 and store.changes(0) == []


def test_claims_survive_reopening(backend: Backend) -> None:
    first = backend.open()
    assert _claim(first, "mac-1")
    first.close()
    second = backend.open()
    assert not _claim(second, "mac-1", T0 + 1)
    second.close()


def test_a_claim_rolls_back_with_its_transaction(store: Store) -> None:
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.claim_once("zh3", "mac-1", T0, 600)
        raise Boom
    assert _claim(store, "mac-1")


def test_threads_claiming_one_token_have_exactly_one_winner(store: Store) -> None:
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda: wins.append(_claim(store, "mac-1"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(wins) == [False] * 7 + [True]


# --------------------------------------------------------------------------- shared state


def _put_state(
    store: Store, key: str, data: dict[str, Any], now: float = T0, ttl: float | None = None
) -> None:
    with store.transaction() as tx:
        tx.put_state("zr", key, data, now, ttl)


def _take_state(store: Store, key: str, now: float = T0) -> dict[str, Any] | None:
    with store.transaction() as tx:
        return tx.take_state("zr", key, now)


def test_state_is_overwritten_per_key_and_listed_by_scope(store: Store) -> None:
    _put_state(store, "h1", {"at": 1})
    _put_state(store, "h1", {"at": 2})
    _put_state(store, "h2", {"at": 3})
    with store.transaction() as tx:
        tx.put_state("zr-other", "h1", {"at": 9}, T0)
    assert store.list_state("zr", T0) == {"h1": {"at": 2}, "h2": {"at": 3}}
    assert store.get_state("zr-other", "h1", T0) == {"at": 9}
    assert store.get_state("zr", "h3", T0) is None


def test_state_gets_no_revision_and_is_not_in_the_feed(store: Store) -> None:
    _put_state(store, "h1", {"at": 1})
    assert _take_state(store, "h1") == {"at": 1}
    with store.transaction() as tx:
        tx.put_state("zr", "h2", {}, T0)
        tx.delete_state("zr", "h2")
    assert store.revision() == 0 and store.changes(0) == []


def test_expired_state_is_invisible(store: Store) -> None:
    _put_state(store, "code", {"role": "auditor"}, ttl=300)
    assert store.get_state("zr", "code", T0 + 299) == {"role": "auditor"}
    assert store.get_state("zr", "code", T0 + 300) is None
    assert store.list_state("zr", T0 + 300) == {}
    assert _take_state(store, "code", T0 + 300) is None


def test_state_is_taken_once(store: Store) -> None:
    _put_state(store, "code", {"n": 1}, ttl=300)
    assert _take_state(store, "code") == {"n": 1}
    assert _take_state(store, "code") is None
    assert store.get_state("zr", "code", T0) is None


def test_state_rolls_back_with_its_transaction(store: Store) -> None:
    _put_state(store, "code", {"n": 1})
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.take_state("zr", "code", T0) == {"n": 1}
        tx.put_state("zr", "other", {}, T0)
        raise Boom
    assert store.list_state("zr", T0) == {"code": {"n": 1}}


def test_threads_taking_one_entry_have_exactly_one_winner(store: Store) -> None:
    _put_state(store, "code", {"n": 1}, ttl=300)
    got: list[dict[str, Any] | None] = []
    threads = [threading.Thread(target=lambda: got.append(_take_state(store, "code"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(got, key=lambda g: g is not None) == [None] * 7 + [{"n": 1}]


# --------------------------------------------------------------------------- processes

_CHILD_ENV = {**os.environ, "PYTHONHASHSEED": "0"}

PAIR_WRITER = """
import json, random, sys, time
from ztos.audit import AuditDraft
from ztos.directory import open_store
from ztos.model import Device
location, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(location)
print("ready", flush=True)
sys.stdin.readline()
done = []
for i in range(count):
    with store.transaction() as tx:
        revs = [tx.put(Device(name=f"{tag}-{i}")), tx.create(Device(name=f"{tag}-{i}-b"))]
        tx.audit(AuditDraft(actor=tag, action="write", target=str(i)))
    done.append(revs)
    time.sleep(random.random() / 1000)  # a tight loop would starve the other writer
store.close()
print(json.dumps(done), flush=True)
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_CHILD_ENV,
    )


def _release_together(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every child has said "ready", then let them all go at once."""
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def test_two_processes_write_without_losing_or_reusing_revisions(backend: Backend, store: Store) -> None:
    count = 200
    children = [_spawn(PAIR_WRITER, backend.location, tag, str(count)) for tag in ("p", "q")]
    _release_together(children)
    results: list[list[list[int]]] = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        results.append(json.loads(out))
    _check_pair_results(store, results, count)


CLAIMER = """
import json, sys
from ztos.directory import open_store
location, count, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = open_store(location)
print("ready", flush=True)
sys.stdin.readline()
won = []
for i in range(count):
    with store.transaction() as tx:
        if kind == "token" and tx.claim_once("zh3", f"mac-{i}", 1800000000.0, 600):
            won.append(i)
        if kind == "state" and tx.take_state("zr", f"code-{i}", 1800000000.0) is not None:
            won.append(i)
store.close()
print(json.dumps(won), flush=True)
"""


@pytest.mark.parametrize("kind", ["token", "state"], ids=["claim_once a token", "take_state an entry"])
def test_two_processes_never_both_win_a_claim(backend: Backend, store: Store, kind: str) -> None:
    count = 100
    if kind == "state":
        with store.transaction() as tx:
            for i in range(count):
                tx.put_state("zr", f"code-{i}", {"i": i}, T0, 600)
    children = [_spawn(CLAIMER, backend.location, str(count), kind) for _ in range(2)]
    _release_together(children)
    won: list[int] = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        won.extend(json.loads(out))
    assert sorted(won) == list(range(count)), "each claimed exactly once"


def _check_pair_results(store: Store, results: list[list[list[int]]], count: int) -> None:
    total = 2 * 2 * count
    every_rev = [rev for result in results for tx_revs in result for rev in tx_revs]
    assert sorted(every_rev) == list(range(1, total + 1))
    assert all(b == a + 1 for result in results for a, b in result)  # one tx, one run
    feed = list(iter_all_changes(store, 0))
    assert [c.rev for c in feed] == list(range(1, total + 1))
    writers = [c.key[0] for c in feed]
    assert sum(a != b for a, b in itertools.pairwise(writers)) >= 2, "writers did not interleave"
    assert store.revision() == total
    assert len(store.list(Device)) == total
    events = store.audit_events(limit=total)
    assert len(events) == 2 * count
    assert verify_chain(events) is None


BATCH_WRITER = """
import sys
from ztos.audit import AuditDraft
from ztos.directory import open_store
from ztos.model import Device
location, batch = sys.argv[1], int(sys.argv[2])
store = open_store(location)
while True:
    with store.transaction() as tx:
        for i in range(50):
            tx.put(Device(name=f"b{batch}-{i}", attributes={"batch": str(batch)}))
        tx.audit(AuditDraft(actor="writer", action="batch", target=str(batch)))
    batch += 1
"""


def _wait_for_progress(store: Store, beyond: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while store.revision() <= beyond:
        assert time.monotonic() < deadline, f"writer made no progress past revision {beyond}"
        time.sleep(0.01)


def test_kill_9_mid_write_leaves_whole_batches(backend: Backend, store: Store) -> None:
    delays = []
    for round_ in range(8):
        child = _spawn(BATCH_WRITER, backend.location, str(round_ * 1000))
        _wait_for_progress(store, store.revision())
        delays.append(random.uniform(0, 0.1))
        time.sleep(delays[-1])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    _check_whole_batches(backend, delays)


def _check_whole_batches(backend: Backend, delays: list[float]) -> None:
    reopened = backend.open()
    try:
        per_batch = Counter(d.attributes["batch"] for d in reopened.list(Device))
        assert per_batch and set(per_batch.values()) == {50}, (per_batch, delays)
        events = reopened.audit_events(limit=100_000)
        assert sorted(e.target for e in events) == sorted(per_batch), delays
        assert verify_chain(events) is None
        assert reopened.revision() == 50 * len(per_batch)
    finally:
        reopened.close()
    backend.check_integrity(backend.location)


# --------------------------------------------------------------------------- change signal


def test_a_commit_raises_the_change_signal_at_once(store: Store) -> None:
    signal = store.change_signal()
    assert signal.revision == store.revision()
    (rev,) = _put(store, Device(name="d1"))
    assert signal.revision == rev  # in this process: before the commit call returns
    with store.transaction() as tx:  # an audit-only transaction has no revision to signal
        tx.audit(AuditDraft(actor="t", action="noop", target="x"))
    assert signal.revision == rev
    assert store.change_signal() is signal, "one signal per store"


ONE_WRITE = """
import sys
from ztos.directory import open_store
from ztos.model import Device
store = open_store(sys.argv[1])
with store.transaction() as tx:
    print(tx.put(Device(name="from-child")), flush=True)
store.close()
"""


def test_a_commit_of_another_process_reaches_the_signal(backend: Backend, store: Store) -> None:
    signal = store.change_signal()
    child = _spawn(ONE_WRITE, backend.location)
    out, _ = child.communicate(timeout=60)
    rev = int(out)

    async def woken() -> int:
        return await signal.wait_for_revision(rev - 1, timeout=2)

    assert asyncio.run(woken()) == rev, "another process's commit did not reach the signal within 2 s"


def test_closing_the_store_wakes_its_watchers(backend: Backend) -> None:
    opened = backend.open()
    signal = opened.change_signal()

    async def scenario() -> int:
        waiting = asyncio.ensure_future(signal.wait_for_revision(signal.revision, timeout=30))
        while signal.waiting == 0:
            await asyncio.sleep(0)
        await asyncio.to_thread(opened.close)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(scenario()) == signal.revision
    assert signal.closed


# --------------------------------------------------------------------------- SQLite file handling


def _db_path(tmp_path: Path) -> Path:
    return tmp_path / "directory.db"


def test_sqlite_new_file_is_marked_as_ztos(tmp_path: Path) -> None:
    SqliteStore(str(_db_path(tmp_path))).close()
    conn = sqlite3.connect(_db_path(tmp_path))
    header: dict[str, Any] = {
        pragma: conn.execute(f"PRAGMA {pragma}").fetchone()[0]
        for pragma in ("application_id", "user_version", "journal_mode")
    }
    conn.close()
    assert header == {
        "application_id": APPLICATION_ID,
        "user_version": SCHEMA_VERSION,
        "journal_mode": "wal",
    }


def test_sqlite_refuses_a_file_of_random_bytes(tmp_path: Path) -> None:
    path = _db_path(tmp_path)
    path.write_bytes(random.randbytes(8192))
    _assert_refused_untouched(path, NotAZtosDirectory)


def test_sqlite_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = _db_path(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("INSERT INTO photos (title) VALUES ('holiday')")
    conn.close()
    _assert_refused_untouched(path, NotAZtosDirectory)


def test_sqlite_refuses_another_applications_id(tmp_path: Path) -> None:
    path = _db_path(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    _assert_refused_untouched(path, NotAZtosDirectory)


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = _db_path(tmp_path)
    SqliteStore(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()
    error = _assert_refused_untouched(path, SchemaTooNew)
    assert f"version {SCHEMA_VERSION + 7}" in str(error)
    assert f"up to version {SCHEMA_VERSION}" in str(error)


def _assert_refused_untouched(path: Path, error: type[DirectoryError]) -> DirectoryError:
    before = path.read_bytes()
    with pytest.raises(error, match=str(path)) as caught:
        SqliteStore(str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return caught.value


OPEN_AND_WRITE = """
import sys
from ztos.directory import open_store
from ztos.model import User
print("ready", flush=True)
sys.stdin.readline()
store = open_store(sys.argv[1])
with store.transaction() as tx:
    tx.put(User(name=sys.argv[2]))
store.close()
"""


def test_sqlite_processes_may_create_a_new_file_together(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"new-{n}.db") for n in range(4)]
    children = [_spawn(OPEN_AND_WRITE, path, f"u{i}") for path in paths for i in range(4)]
    _release_together(children)
    assert [child.wait(timeout=30) for child in children] == [0] * len(children)
    for path in paths:
        with SqliteStore(path) as store:
            assert [user.name for user in store.list(User)] == ["u0", "u1", "u2", "u3"]


def test_sqlite_refuses_nested_transactions_instead_of_deadlocking(tmp_path: Path) -> None:
    store = SqliteStore(str(_db_path(tmp_path)))
    with store.transaction(), pytest.raises(DirectoryError, match="nested"), store.transaction():
        pass
    store.close()


def test_sqlite_transaction_is_unusable_after_its_block(tmp_path: Path) -> None:
    with SqliteStore(str(_db_path(tmp_path))) as store:
        with store.transaction() as tx:
            pass
        with pytest.raises(DirectoryError, match="ended"):
            tx.put(User(name="late"))


def _once_tokens(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT scope, token FROM once_tokens ORDER BY scope, token").fetchall()
    conn.close()
    return rows


def test_sqlite_expired_tokens_are_pruned(tmp_path: Path) -> None:
    with SqliteStore(str(_db_path(tmp_path))) as store:
        for i in range(50):
            _claim(store, f"mac-{i}", T0 + i)
        _claim(store, "other", T0, scope="zh3-other")
        _claim(store, "late", T0 + 700)  # every mac-* expired by then (T0 + i + 600)
    assert _once_tokens(_db_path(tmp_path)) == [("zh3", "late"), ("zh3-other", "other")]


def test_sqlite_schema_1_file_is_upgraded_keeping_its_records(tmp_path: Path) -> None:
    conn = sqlite3.connect(_db_path(tmp_path), isolation_level=None)
    for statement in split_statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
    conn.execute("PRAGMA user_version = 1")
    data = json.dumps(User(name="a").model_dump(mode="json"))
    conn.execute("INSERT INTO objects (kind, key, data, rev) VALUES ('user', 'a', ?, 1)", (data,))
    conn.execute("UPDATE meta SET value = 1 WHERE name = 'revision'")
    conn.close()
    with SqliteStore(str(_db_path(tmp_path))) as store:
        assert store.get(User, "a") == User(name="a") and store.revision() == 1
        assert _claim(store, "mac-1") and not _claim(store, "mac-1")
        _put_state(store, "h1", {"at": 1})
        assert store.list_state("zr", T0) == {"h1": {"at": 1}}
    conn = sqlite3.connect(_db_path(tmp_path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


def _shared_state_rows(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT scope, key FROM shared_state ORDER BY scope, key").fetchall()
    conn.close()
    return rows


def test_sqlite_expired_state_is_pruned(tmp_path: Path) -> None:
    with SqliteStore(str(_db_path(tmp_path))) as store:
        for i in range(50):
            _put_state(store, f"code-{i}", {}, T0 + i, ttl=600)
        with store.transaction() as tx:
            tx.put_state("zr-other", "kept", {}, T0, 1)
        _put_state(store, "h1", {})  # no ttl: kept until overwritten or deleted
        _put_state(store, "late", {}, T0 + 700, ttl=600)  # every code-* expired by then
    assert _shared_state_rows(_db_path(tmp_path)) == [("zr", "h1"), ("zr", "late"), ("zr-other", "kept")]


def test_sqlite_schema_3_node_records_lose_their_stale_tenants_and_last_seen(tmp_path: Path) -> None:
    """Schema 4: membership lives on ``Tenant.nodes`` only and "last seen" in its own kind,
    so a node record written by an older ZTOS (with both fields) still loads after the upgrade."""
    conn = sqlite3.connect(_db_path(tmp_path), isolation_level=None)
    for script in MIGRATIONS[:3]:
        for statement in split_statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
    conn.execute("PRAGMA user_version = 3")
    old = {**_node().model_dump(mode="json"), "tenants": ["blue"], "last_seen": None}
    insert = "INSERT INTO objects (kind, key, data, rev) VALUES ('node', 'node-a', ?, 1)"
    conn.execute(insert, (json.dumps(old),))
    conn.execute("UPDATE meta SET value = 1 WHERE name = 'revision'")
    conn.close()
    with SqliteStore(str(_db_path(tmp_path))) as store:
        assert store.get(Node, "node-a") == _node()
        assert store.revision() == 1  # the upgrade is no write: it wakes nobody
