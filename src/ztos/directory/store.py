"""The ``Store`` protocol: typed CRUD, transactions, revisions and a change feed.

Designed so that an LDAP back end can implement it too: records are flat
documents addressed by (kind, key) — an LDAP entry ``key=…,ou=kind`` — and the
revision is a single counter the back end bumps once per changed record
(LDAP: a counter entry updated in the same modify batch, or contextCSN).

Semantics every back end must honour (the contract tests in
``tests/contract/`` check them):

* All writes happen inside ``with store.transaction() as tx:``; leaving the
  block normally commits everything, an exception commits nothing.
* Every ``put``/``create``/``delete`` gets the next revision; revisions
  increase strictly and are never reused, even across processes.
* ``changes(since_rev)`` returns the changes with ``rev > since_rev`` in
  order; a watcher long-polls by remembering the last ``rev`` it saw, and
  sleeps on ``change_signal()`` (``ztos.directory.signal``) between reads.
* Audit events are appended inside transactions and hash-chained
  (``ztos.audit``); they are not part of the change feed.
* ``claim_once`` remembers short-lived one-time tokens (e.g. the MACs of
  signed DNS updates, so a replay is refused by every controller over the same
  directory, also after a restart). Claiming is one atomic insert on a unique
  (scope, token) key; tokens get no revision and are not in the change feed.
* Shared state (``put_state``/``take_state``/``get_state``/``list_state``) is
  what every controller replica must know but no node may see: login codes,
  ended sessions, posture report times, agent status reports. Entries are JSON
  documents addressed by (scope, key), overwritten in place (so a scope holds
  at most one entry per key), optionally expiring. Like one-time tokens they
  get no revision and are not in the change feed, so writing them wakes no
  watcher (LDAP: entries under ``ou=state``, outside the synced subtree).
  ``take_state`` is one atomic step: of two replicas redeeming one login code,
  exactly one gets it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from ztos.audit import AuditDraft
from ztos.directory.signal import ChangeSignal
from ztos.model import AuditEvent, Record

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Change:
    """One change in the feed. ``data`` is the record after a put, None after a delete."""

    rev: int
    kind: str
    key: str
    op: Literal["put", "delete"]
    data: dict[str, Any] | None


class Transaction(Protocol):
    def get(self, cls: type[R], key: str) -> R | None: ...

    def list(self, cls: type[R]) -> list[R]: ...

    def create(self, record: Record) -> int:
        """Insert a new record; ``Conflict`` if the key exists. Returns its revision."""
        ...

    def put(self, record: Record) -> int:
        """Insert or replace a record. Returns its revision."""
        ...

    def delete(self, cls: type[Record], key: str) -> int:
        """Remove a record; ``NotFound`` if absent. Returns the revision of the delete."""
        ...

    def audit(self, draft: AuditDraft) -> AuditEvent:
        """Append a hash-chained audit event, committed with the transaction."""
        ...

    def claim_once(self, scope: str, token: str, now: float, ttl: float) -> bool:
        """Remember ``token`` in ``scope`` until ``now + ttl`` (seconds since the epoch).

        True the first time; False while the token is still remembered (a
        replay). The test and the insert are one step, so of two writers
        claiming the same token exactly one wins. Tokens of ``scope`` that
        expired by ``now`` are forgotten first, which keeps the table bounded.
        """
        ...

    def put_state(
        self, scope: str, key: str, data: dict[str, Any], now: float, ttl: float | None = None
    ) -> None:
        """Insert or overwrite the entry (scope, key), visible until ``now + ttl``
        (seconds since the epoch; forever without ``ttl``). Entries of ``scope``
        expired by ``now`` are forgotten first, which keeps the scope bounded."""
        ...

    def take_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        """Remove the entry and return its data; None if absent or expired by ``now``.
        The read and the removal are one step: of two takers exactly one gets it."""
        ...

    def get_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        """The entry's data, None if absent or expired, as seen inside this transaction."""
        ...

    def delete_state(self, scope: str, key: str) -> None:
        """Forget the entry (nothing happens if it is absent)."""
        ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def get(self, cls: type[R], key: str) -> R | None: ...

    def list(self, cls: type[R]) -> list[R]: ...

    def revision(self) -> int: ...

    def changes(self, since_rev: int, limit: int = 1000) -> builtins.list[Change]: ...

    def audit_events(self, after_seq: int = 0, limit: int = 1000) -> builtins.list[AuditEvent]: ...

    def change_signal(self) -> ChangeSignal:
        """The signal notified after every commit: at once in this process, within
        about 0.1 s for commits of other processes over the same directory."""
        ...

    def get_state(self, scope: str, key: str, now: float) -> dict[str, Any] | None:
        """Committed shared state (see ``Transaction.put_state``); None if absent or expired."""
        ...

    def list_state(self, scope: str, now: float) -> dict[str, dict[str, Any]]:
        """Every unexpired entry of ``scope``, by key."""
        ...

    def close(self) -> None: ...


def open_store(location: str) -> Store:
    """Open the directory at ``location`` (a SQLite file path; ``ldap://`` later)."""
    from ztos.directory.sqlite import SqliteStore

    return SqliteStore(location)


def iter_all_changes(store: Store, since_rev: int, page: int = 1000) -> Iterator[Change]:
    """Every change after ``since_rev``, paging through the feed."""
    while True:
        batch = store.changes(since_rev, page)
        yield from batch
        if len(batch) < page:
            return
        since_rev = batch[-1].rev
