"""Pure helpers for the tamper-evident audit log.

Each event's ``hash`` is SHA-256 over the previous event's hash and the
event's own canonical JSON, so editing, removing or reordering any stored
event breaks every hash after it; ``verify_chain`` finds the first break.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ztos.model import AuditEvent

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditDraft:
    """An audit event before the store gives it a sequence number and a hash."""

    actor: str
    action: str
    target: str = ""
    outcome: str = "ok"
    detail: str = ""


def event_hash(prev_hash: str, seq: int, at: datetime, draft: AuditDraft) -> str:
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "actor": draft.actor,
        "action": draft.action,
        "target": draft.target,
        "outcome": draft.outcome,
        "detail": draft.detail,
    }
    payload = prev_hash + json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def seal(prev_hash: str, seq: int, at: datetime, draft: AuditDraft) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        at=at,
        actor=draft.actor,
        action=draft.action,
        target=draft.target,
        outcome=draft.outcome,
        detail=draft.detail,
        prev_hash=prev_hash,
        hash=event_hash(prev_hash, seq, at, draft),
    )


def verify_chain(events: Iterable[AuditEvent], prev_hash: str = GENESIS_HASH) -> int | None:
    """Return the sequence number of the first event that breaks the chain, or None."""
    expected_seq: int | None = None
    for event in events:
        draft = AuditDraft(event.actor, event.action, event.target, event.outcome, event.detail)
        if expected_seq is not None and event.seq != expected_seq:
            return event.seq
        if event.prev_hash != prev_hash or event.hash != event_hash(prev_hash, event.seq, event.at, draft):
            return event.seq
        prev_hash, expected_seq = event.hash, event.seq + 1
    return None
