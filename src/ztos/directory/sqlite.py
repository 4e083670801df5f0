"""The embedded directory back end: one SQLite file, the default for one machine.

Why SQLite: a single-host ZTOS needs a directory with real transactions,
crash safety and several writer processes (controllers, CLI) without running a
server. SQLite in WAL mode gives exactly that; this module only maps the
``Store`` protocol (``ztos.directory.store``) onto five tables:

* ``objects(kind, key, data, rev)``: the current records, JSON documents;
* ``changes(rev, kind, key, op, data)``: the change feed, one row per write;
* ``meta(name, value)``: the revision counter. It is stored rather than
  derived from ``MAX(changes.rev)`` so that pruning old changes can never
  make a revision number come back;
* ``audit(seq, ..., prev_hash, hash)``: the hash-chained audit log;
* ``once_tokens(scope, token, expires)``: ``claim_once``'s tokens (schema 2);
* ``shared_state(scope, key, data, expires)``: the replicas' shared state
  (``put_state``; schema 3), a rowid table because agent reports can be large.

The file is marked with ``PRAGMA application_id`` (ZTOS) and its schema version
with ``PRAGMA user_version``; ``MIGRATIONS`` upgrades it one script at a time.
A file that is not ours, or was written by a newer ZTOS, is refused before
anything is written to it.

Concurrency: writes go through one connection guarded by a lock and run in
``BEGIN IMMEDIATE`` transactions, so threads of one process queue on the lock
and processes queue on SQLite's write lock (``busy_timeout``). Reads outside a
transaction use a small pool of separate connections, so they see committed
data only, never a transaction in progress, and under WAL never block writers.

Change signal (``ztos.directory.signal``): a commit notifies the store's
``ChangeSignal`` at once; commits of other processes are noticed by one thread
per store that checks ``PRAGMA data_version`` (a number SQLite bumps when
another connection commits, read from the shared WAL index without touching
the tables) every ``DATA_VERSION_INTERVAL_S``.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ztos.audit import GENESIS_HASH, AuditDraft, seal
from ztos.directory.signal import ChangeSignal
from ztos.directory.store import Change, Store, Transaction
from ztos.errors import (
    Conflict,
    DirectoryError,
    InvalidInput,
    NotAZtosDirectory,
    NotFound,
    SchemaTooNew,
)
from ztos.model import AuditEvent, Record, utcnow

R = TypeVar("R", bound=Record)

APPLICATION_ID = 0x5A544F53  # "ZTOS" in ASCII
BUSY_TIMEOUT_S = 10.0
DATA_VERSION_INTERVAL_S = 0.05  # how soon a watcher hears of another process's commit
log = logging.getLogger("ztos.directory")
SQLITE_MAGIC = b"SQLite format 3\x00"

MIGRATIONS: list[str] = [
    # 1: initial schema.
    """
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (name, value) VALUES ('revision', 0);
    CREATE TABLE objects (
        kind TEXT NOT NULL,
        key  TEXT NOT NULL,
        data TEXT NOT NULL CHECK (json_valid(data)),
        rev  INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE TABLE changes (
        rev  INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        key  TEXT NOT NULL,
        op   TEXT NOT NULL CHECK (op IN ('put', 'delete')),
        data TEXT CHECK (data IS NULL OR json_valid(data))
    );
    CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        target    TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    """,
    # 2: one-time tokens (``claim_once``), e.g. the replay cache of signed DNS updates.
    """
    CREATE TABLE once_tokens (
        scope   TEXT NOT NULL,
        token   TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (scope, token)
    ) WITHOUT ROWID;
    CREATE INDEX once_tokens_expiry ON once_tokens (scope, expires);
    """,
    # 3: state every controller replica shares but nodes never see (``put_state``).
    """
    CREATE TABLE shared_state (
        scope   TEXT NOT NULL,
        key     TEXT NOT NULL,
        data    TEXT NOT NULL CHECK (json_valid(data)),
        expires REAL,
        UNIQUE (scope, key)
    );
    CREATE INDEX shared_state_expiry ON shared_state (scope, expires) WHERE expires IS NOT NULL;
    """,
    # 4: node records lose ``tenants`` and ``last_seen``. Membership lives on the
    # tenant alone (``Tenant.nodes``, which is what the data plane always served; the
    # node's copy was written at enrolment and never updated, so it is dropped, not
    # merged), and "last seen" is its own kind (``nodeseen``) so that writing it never
    # wakes the peers watching node records. Records only: the change feed's history
    # is left as it was written.
    """
    UPDATE objects SET data = json_remove(data, '$.tenants', '$.last_seen') WHERE kind = 'node';
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_AUDIT_COLUMNS = "seq, at, actor, action, target, outcome, detail, prev_hash, hash"
_AUDIT_VALUES = ", ".join(f":{name}" for name in _AUDIT_COLUMNS.split(", "))
_CHANGE_COLUMNS = "rev, kind, key, op, data"

Row = tuple[Any, ...]


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements.

    ``executescript`` would commit the surrounding transaction first, so a
    migration could not run atomically with its version bump; running the
    statements one by one keeps the whole upgrade in one transaction.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    """Run a query to completion, so no statement keeps a read snapshot open."""
    with closing(conn.execute(sql, params)) as cursor:
        return cursor.fetchall()


def _encode(record: Record) -> str:
    return json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _kind(cls: type[Record]) -> str:
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str):
        raise InvalidInput(f"{cls.__name__} is not a directory record kind (it has no 'kind')")
    return kind


def _connect(path: str) -> sqlite3.Connection:
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread
        # is off because connections are shared under a lock or handed out by a pool.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DirectoryError(f"cannot open directory file {path}: {exc}") from exc
    # FULL fsyncs the WAL on every commit: a committed revocation or enrolment
    # must survive a power cut, not only a process crash (NORMAL would only
    # guarantee the latter in WAL mode). Writes are rare enough to afford it.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


# One statement, so one snapshot: a process that is migrating the file at the
# same moment cannot make us see its tables without its application_id.
_HEADER_QUERY = """
    SELECT (SELECT application_id FROM pragma_application_id),
           (SELECT user_version FROM pragma_user_version),
           EXISTS (SELECT 1 FROM sqlite_master)
"""


class _Header:
    """What a file says about itself before we touch it."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        try:
            row = _rows(conn, _HEADER_QUERY)[0]
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise NotAZtosDirectory(_not_ours(path, "it is not an SQLite database")) from exc
            raise DirectoryError(f"cannot read directory file {path}: {exc}") from exc
        self.application_id, self.user_version = int(row[0]), int(row[1])
        self.has_tables = bool(row[2])

    @property
    def is_new(self) -> bool:
        return self.application_id == 0 and self.user_version == 0 and not self.has_tables

    def check(self, path: str) -> None:
        if not self.is_new and self.application_id != APPLICATION_ID:
            why = f"its SQLite application_id is {self.application_id:#x}, not ZTOS's"
            raise NotAZtosDirectory(_not_ours(path, why))
        if self.user_version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"directory {path} has schema version {self.user_version}, but this ZTOS "
                f"supports up to version {SCHEMA_VERSION}: upgrade ZTOS to open it"
            )


def _not_ours(path: str, why: str) -> str:
    return (
        f"{path} is not a ZTOS directory ({why}); "
        "point ZTOS at its own directory file or at a path that does not exist yet"
    )


def _create_private(path: str) -> None:
    """Create a missing directory file 0600 before SQLite does (it would follow the
    umask): it holds token hashes and TSIG secrets, and SQLite gives its ``-wal`` and
    ``-shm`` the database file's mode."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return
    except OSError as exc:
        raise DirectoryError(f"cannot create directory file {path}: {exc}") from exc


def _check_magic(path: str) -> None:
    """Refuse a non-empty file that is not SQLite without letting SQLite open it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise NotAZtosDirectory(_not_ours(path, "it is a directory")) from exc
    except OSError as exc:
        raise DirectoryError(f"cannot read directory file {path}: {exc}") from exc
    if head and head != SQLITE_MAGIC:
        raise NotAZtosDirectory(_not_ours(path, "it is not an SQLite database"))


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` atomically, re-checking under the lock.

    Two processes may open a new file at once; the second one to take the
    write lock finds the work done.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        header = _Header(conn, path)
        header.check(path)
        for script in MIGRATIONS[header.user_version :]:
            for statement in split_statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _enable_wal(conn: sqlite3.Connection, path: str) -> None:
    """Switch the file to WAL (persistent), retrying while another process holds it.

    SQLite answers a journal-mode switch on a busy file with "database is
    locked" at once, without its busy handler, so two processes opening a new
    directory together need this loop.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = _rows(conn, "PRAGMA journal_mode = WAL")[0][0]
            break
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DirectoryError(f"directory {path} stayed locked: {exc}") from exc
            time.sleep(0.01)
    if mode != "wal":
        raise DirectoryError(f"directory {path} cannot use write-ahead logging (mode {mode})")


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full, I/O error).
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _event_from_row(row: Row) -> AuditEvent:
    names = _AUDIT_COLUMNS.split(", ")
    return AuditEvent.model_validate(dict(zip(names, row, strict=True)))


def _change_from_row(row: Row) -> Change:
    rev, kind, key, op, data = row
    op_: Literal["put", "delete"] = "put" if op == "put" else "delete"
    return Change(rev, kind, key, op_, None if data is None else json.loads(data))


def _get(conn: sqlite3.Connection, cls: type[R], key: str) -> R | None:
    rows = _rows(conn, "SELECT data FROM objects WHERE kind = ? AND key = ?", (_kind(cls), key))
    return cls.model_validate(json.loads(rows[0][0])) if rows else None


_LIVE = "(expires IS NULL OR expires > ?)"


def _get_state(conn: sqlite3.Connection, scope: str, key: str, now: float) -> dict[str, Any] | None:
    sql = f"SELECT data FROM shared_state WHERE scope = ? AND key = ? AND {_LIVE}"  # noqa: S608
    rows = _rows(conn, sql, (scope, key, now))
    return _state_data(rows[0][0]) if rows else None


def _state_data(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise DirectoryError(f"shared state entry is not a JSON object: {text[:80]!r}")
    return data


def _list(conn: sqlite3.Connection, cls: type[R]) -> list[R]:
    rows = _rows(conn, "SELECT data FROM objects WHERE kind = ? ORDER BY key", (_kind(cls),))
    return [cls.model_validate(json.loads(data)) for (data,) in rows]


class SqliteTransaction:
    """The ``Transaction`` of ``SqliteStore``: valid only inside its ``with`` block."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], datetime]) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._clock = clock
        self.last_revision = 0  # the newest revision written, 0 if none: what the commit signals

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DirectoryError("this transaction has ended; open a new one")
        return self._conn

    def end(self) -> None:
        self._conn = None

    def get(self, cls: type[R], key: str) -> R | None:
        return _get(self._db, cls, key)

    def list(self, cls: type[R]) -> list[R]:
        return _list(self._db, cls)

    def create(self, record: Record) -> int:
        kind = _kind(type(record))
        if self._exists(kind, record.key):
            raise Conflict(f"{kind} '{record.key}' already exists")
        return self._write(record)

    def put(self, record: Record) -> int:
        return self._write(record)

    def delete(self, cls: type[Record], key: str) -> int:
        kind = _kind(cls)
        if not self._exists(kind, key):
            raise NotFound(f"{kind} '{key}' does not exist")
        rev = self._next_revision()
        self._db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
        self._log_change(rev, kind, key, "delete", None)
        return rev

    def audit(self, draft: AuditDraft) -> AuditEvent:
        last = _rows(self._db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = (last[0][0] + 1, last[0][1]) if last else (1, GENESIS_HASH)
        event = seal(prev_hash, seq, self._clock(), draft)
        row = {**event.model_dump(), "at": event.at.isoformat()}
        self._db.execute(f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES ({_AUDIT_VALUES})", row)  # noqa: S608
        return event

    def claim_once(self, scope: str, token: str, now: float, ttl: float) -> bool:
        self._db.execute("DELETE FROM once_tokens WHERE scope = ? AND expires <= ?", (scope, now))
        sql = "INSERT INTO once_tokens (scope, token, expires) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        with closing(self._db.execute(sql, (scope, token, now + ttl))) as cursor:
            return cursor.rowcount == 1

    def put_state(
        self, scope: str, key: str, data: dict[str, Any], now: float, ttl: float | None = None
    ) -> None:
        self._db.execute("DELETE FROM shared_state WHERE scope = ? AND expires <= ?", (scope, now))
        expires = None if ttl is None else now + ttl
        self._db.execute(
            "INSERT INTO shared_state (scope, key, data, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (scope, key) DO UPDATE SET data = excluded.data, expires = excluded.expires",
            (scope, key, json.dumps(data, sort_keys=True, separators=(",", ":")), expires),
        )

    def take_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        # The expiry is compared here, not in RETURNING: SQLite 3.40 evaluates an
        # expression there wrongly when a partial index covers the column.
        sql = "DELETE FROM shared_state WHERE scope = ? AND key = ? RETURNING data, expires"
        rows = _rows(self._db, sql, (scope, key))
        if not rows or (rows[0][1] is not None and rows[0][1] <= now):
            return None
        return _state_data(rows[0][0])

    def get_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        return _get_state(self._db, scope, key, now)

    def delete_state(self, scope: str, key: str) -> None:
        self._db.execute("DELETE FROM shared_state WHERE scope = ? AND key = ?", (scope, key))

    def _exists(self, kind: str, key: str) -> bool:
        sql = "SELECT 1 FROM objects WHERE kind = ? AND key = ?"
        return bool(_rows(self._db, sql, (kind, key)))

    def _write(self, record: Record) -> int:
        kind, data = _kind(type(record)), _encode(record)
        rev = self._next_revision()
        self._db.execute(
            "INSERT OR REPLACE INTO objects (kind, key, data, rev) VALUES (?, ?, ?, ?)",
            (kind, record.key, data, rev),
        )
        self._log_change(rev, kind, record.key, "put", data)
        return rev

    def _next_revision(self) -> int:
        sql = "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
        self.last_revision = int(_rows(self._db, sql)[0][0])
        return self.last_revision

    def _log_change(self, rev: int, kind: str, key: str, op: str, data: str | None) -> None:
        self._db.execute(
            f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
            (rev, kind, key, op, data),
        )


class SqliteStore:
    """A ZTOS directory in one SQLite file at ``path`` (created when missing)."""

    def __init__(self, path: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.path = path
        self._clock = clock
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._closed = False
        self._signal: ChangeSignal | None = None
        self._signal_lock = threading.Lock()
        self._version_watch: _DataVersionWatch | None = None
        self._writer = self._open_writer()

    def _open_writer(self) -> sqlite3.Connection:
        _check_magic(self.path)
        _create_private(self.path)
        conn = _connect(self.path)
        try:
            _Header(conn, self.path).check(self.path)
            # Only now, knowing the file is ours (or new), may we write to it.
            _enable_wal(conn, self.path)
            _migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        """Commit on normal exit, roll back (and re-raise) on any exception."""
        if getattr(self._local, "in_transaction", False):
            raise DirectoryError("nested transactions are not supported; reuse the open one")
        with self._write_lock:
            self._check_open()
            self._local.in_transaction = True
            try:
                yield from self._run_transaction(self._writer)
            finally:
                self._local.in_transaction = False

    def _run_transaction(self, conn: sqlite3.Connection) -> Iterator[SqliteTransaction]:
        self._begin(conn)
        tx = SqliteTransaction(conn, self._clock)
        try:
            yield tx
            conn.execute("COMMIT")
            if tx.last_revision and self._signal is not None:
                self._signal.notify(tx.last_revision)
        except sqlite3.Error as exc:
            _rollback(conn)
            raise DirectoryError(f"directory {self.path}: transaction failed: {exc}") from exc
        except BaseException:
            _rollback(conn)
            raise
        finally:
            tx.end()

    def _begin(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DirectoryError(
                f"directory {self.path} is busy: another process held its write lock "
                f"for more than {BUSY_TIMEOUT_S:g}s ({exc}); try again",
                code="directory_busy",
            ) from exc

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection outside any transaction, so it sees committed data only."""
        self._check_open()
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        conn = conn or _connect(self.path)
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def get(self, cls: type[R], key: str) -> R | None:
        with self._reader() as conn:
            return _get(conn, cls, key)

    def list(self, cls: type[R]) -> list[R]:
        with self._reader() as conn:
            return _list(conn, cls)

    def revision(self) -> int:
        with self._reader() as conn:
            return int(_rows(conn, "SELECT value FROM meta WHERE name = 'revision'")[0][0])

    def changes(self, since_rev: int, limit: int = 1000) -> builtins.list[Change]:
        _check_limit(limit)
        sql = f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE rev > ? ORDER BY rev LIMIT ?"  # noqa: S608
        with self._reader() as conn:
            return [_change_from_row(row) for row in _rows(conn, sql, (since_rev, limit))]

    def audit_events(self, after_seq: int = 0, limit: int = 1000) -> builtins.list[AuditEvent]:
        _check_limit(limit)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608
        with self._reader() as conn:
            return [_event_from_row(row) for row in _rows(conn, sql, (after_seq, limit))]

    def change_signal(self) -> ChangeSignal:
        """This store's signal, made (and its ``data_version`` thread started) on first use."""
        with self._signal_lock:
            if self._signal is None:
                self._check_open()
                signal = ChangeSignal(self.revision())
                self._version_watch = _DataVersionWatch(self.path, signal)
                self._version_watch.start()
                self._signal = signal
            return self._signal

    def get_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        with self._reader() as conn:
            return _get_state(conn, scope, key, now)

    def list_state(self, scope: str, now: float) -> dict[str, dict[str, Any]]:
        sql = f"SELECT key, data FROM shared_state WHERE scope = ? AND {_LIVE} ORDER BY key"  # noqa: S608
        with self._reader() as conn:
            return {key: _state_data(data) for key, data in _rows(conn, sql, (scope, now))}

    def close(self) -> None:
        """Close every connection; waits for a transaction in progress to finish."""
        if getattr(self._local, "in_transaction", False):
            raise DirectoryError("cannot close the directory inside one of its transactions")
        with self._signal_lock:
            if self._version_watch is not None:
                self._version_watch.stop()
            if self._signal is not None:
                self._signal.close()
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in [*self._idle, self._writer]:
                conn.close()
            self._idle.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise DirectoryError(f"directory {self.path} has been closed")


class _DataVersionWatch:
    """One thread per store: feeds other processes' commits into the signal.

    ``PRAGMA data_version`` changes when any other connection commits; only
    then is the revision read (one small query), so an idle directory costs
    one pragma per interval per process, whatever the number of watchers.
    """

    def __init__(self, path: str, signal: ChangeSignal, interval: float = DATA_VERSION_INTERVAL_S) -> None:
        self._path, self._signal, self._interval = path, signal, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ztos-data-version", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = _connect(self._path)
        try:
            seen = None
            while not self._stop.wait(self._interval):
                seen = self._check(conn, seen)
        finally:
            conn.close()

    def _check(self, conn: sqlite3.Connection, seen: int | None) -> int | None:
        try:
            version = int(_rows(conn, "PRAGMA data_version")[0][0])
            if version != seen:
                self._signal.notify(int(_rows(conn, "SELECT value FROM meta WHERE name = 'revision'")[0][0]))
            return version
        except sqlite3.Error as exc:  # a busy or briefly unreadable file: try again next time
            log.warning("directory %s: cannot check for changes: %s", self._path, exc)
            return seen


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")


if TYPE_CHECKING:  # mypy proves that SqliteStore implements the protocols.

    def _implements_store(store: SqliteStore, tx: SqliteTransaction) -> tuple[Store, Transaction]:
        return store, tx
