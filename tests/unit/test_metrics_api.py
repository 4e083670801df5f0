"""Pure parts of the monitoring API and its CLI: log filters and paging, sessions, login codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ztos.api.auth import ApiSettings, SessionSigner, _requested_role
from ztos.api.routes.monitoring import AuditQuery, Snapshots, filtered_page
from ztos.cli.monitoring import human_bytes, parse_since
from ztos.controller.sessions import EndedSessions, LoginCodes
from ztos.directory.sqlite import SqliteStore
from ztos.errors import InvalidInput, Unauthenticated
from ztos.model import AuditEvent, Role
from ztos.pki import Identity

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(
    seq: int, actor: str, action: str, target: str = "", outcome: str = "ok", detail: str = ""
) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        at=T0 + timedelta(minutes=seq),
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


LOG = [
    event(1, "cli:init", "network.init", "network:default"),
    event(2, "admin:admin", "token.create", "token:ab", detail="for node h1, expires …"),
    event(3, "node:h1", "enroll", "node:h1"),
    event(4, "enrollee:h10@10.0.0.9", "enroll", "node:h10", "refused", "token_used: already used"),
    event(5, "admin:admin", "tenant.attach", "tenant:blue", detail="node h1"),
    event(6, "operator:olivia", "node.revoke", "node:h1", detail="lost laptop"),
    event(
        7, "auditor:alice", "api.call", "POST /api/v1/tenants", "refused", "auditor 'alice' may not do this"
    ),
]


@pytest.mark.parametrize(
    ("query", "seqs"),
    [
        (AuditQuery(), [1, 2, 3, 4, 5, 6, 7]),
        (AuditQuery(node="h1"), [2, 3, 5, 6]),
        (AuditQuery(node="h10"), [4]),
        (AuditQuery(action="node"), [6]),
        (AuditQuery(action="enroll"), [3, 4]),
        (AuditQuery(action="node.rev"), []),
        (AuditQuery(actor="admin"), [2, 5]),
        (AuditQuery(actor="operator:olivia"), [6]),
        (AuditQuery(actor="alice"), [7]),
        (AuditQuery(outcome="refused"), [4, 7]),
        (AuditQuery(since=T0 + timedelta(minutes=6)), [6, 7]),
        (AuditQuery(text="LAPTOP"), [6]),
        (AuditQuery(outcome="refused", actor="auditor"), [7]),
    ],
    ids=repr,
)
def test_log_filters(query: AuditQuery, seqs: list[int]) -> None:
    assert [e.seq for e in LOG if query.matches(e)] == seqs


def fetch(after: int, limit: int) -> list[AuditEvent]:
    return [e for e in LOG if e.seq > after][:limit]


def test_paging_continues_after_the_last_event_looked_at() -> None:
    refused = AuditQuery(outcome="refused")
    events, cursor = filtered_page(fetch, refused, 0, 1)
    assert ([e.seq for e in events], cursor) == ([4], 4)
    events, cursor = filtered_page(fetch, refused, cursor, 10)
    assert ([e.seq for e in events], cursor) == ([7], 7)
    events, cursor = filtered_page(fetch, AuditQuery(action="nothing"), 0, 10)
    assert (events, cursor) == ([], 7), "a follower does not rescan what matched nothing"


def test_paging_across_store_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ztos.api.routes.monitoring.SCAN_BATCH", 2)
    events, cursor = filtered_page(fetch, AuditQuery(outcome="refused"), 0, 10)
    assert ([e.seq for e in events], cursor) == ([4, 7], 7)


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_since("1h", now) == "2025-03-01T11:00:00+00:00"
    assert parse_since("90", now) == "2025-03-01T11:58:30+00:00"
    assert parse_since("2025-02-01T10:00:00", now) == "2025-02-01T10:00:00+00:00"
    assert parse_since("2025-02-01T10:00:00+02:00", now) == "2025-02-01T10:00:00+02:00"
    with pytest.raises(InvalidInput, match=r"duration .* or an ISO time"):
        parse_since("yesterday", now)


def test_human_bytes() -> None:
    assert [human_bytes(v) for v in (0, 1023, 1024, 5 * 2**20, 3 * 2**40)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 TiB",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


ALICE = Identity(name="alice", role=Role.AUDITOR, serial="abc123")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(str(tmp_path / "dir.db")) as opened:
        yield opened


def test_session_tokens_round_trip_expire_and_refuse_tampering(store: SqliteStore) -> None:
    clock = Clock()
    signer = SessionSigner(b"k" * 32, EndedSessions(store, clock), clock)
    claims = signer.mint(ALICE, 900, "certificate")
    token = signer.encode(claims)
    assert signer.decode(token) == claims and claims.identity() == ALICE
    other = SessionSigner(b"j" * 32, EndedSessions(store, clock), clock)
    with pytest.raises(Unauthenticated, match="signature"):
        other.decode(token)
    prefix, _payload, mac = token.split(".")
    forged = signer.encode(signer.mint(Identity("alice", Role.ADMIN, "abc123"), 900, "certificate"))
    with pytest.raises(Unauthenticated, match="signature"):
        signer.decode(f"{prefix}.{forged.split('.')[1]}.{mac}")
    for bad in ("", "zt1.x", "zt2.a.b", "zt1." + "a" * 3000 + ".b"):
        with pytest.raises(Unauthenticated, match="malformed"):
            signer.decode(bad)
    clock.now += 900
    with pytest.raises(Unauthenticated) as expired:
        signer.decode(token)
    assert expired.value.code == "session_expired"


def test_sessions_never_outlive_the_certificate_and_log_out(store: SqliteStore) -> None:
    clock = Clock()
    signer = SessionSigner(b"k" * 32, EndedSessions(store, clock), clock)
    not_after = datetime.fromtimestamp(clock.now + 60, UTC)
    claims = signer.mint(ALICE, 900, "certificate", not_after)
    assert claims.expires == clock.now + 60
    signer.log_out(claims)
    with pytest.raises(Unauthenticated, match="logged out"):
        signer.decode(signer.encode(claims))


def test_login_codes_work_once_and_expire(store: SqliteStore) -> None:
    clock = Clock()
    codes = LoginCodes(store, clock)
    code, _ = codes.create(ALICE, T0, 300)
    assert codes.redeem(code).claims_for == ALICE
    with pytest.raises(Unauthenticated, match="already used"):
        codes.redeem(code)
    late, _ = codes.create(ALICE, T0, 300)
    clock.now += 301
    with pytest.raises(Unauthenticated):
        codes.redeem(late)


def test_requested_role_of_a_token_request() -> None:
    assert _requested_role(b'{"node_name": "h1"}') is Role.NODE
    assert _requested_role(b'{"role": "admin"}') is Role.ADMIN
    assert _requested_role(b"[1]") is None
    assert _requested_role(b'{"role": "root"}') is None
    assert _requested_role(b"not json") is None


def test_api_settings_from_environment() -> None:
    assert ApiSettings.from_env({}) == ApiSettings()
    settings = ApiSettings.from_env({"ZTOS_SESSION_TTL": "60", "ZTOS_METRICS_PUBLIC": "1"})
    assert (settings.session_ttl, settings.metrics_public) == (60, True)
    with pytest.raises(InvalidInput, match="ZTOS_SESSION_TTL"):
        ApiSettings.from_env({"ZTOS_SESSION_TTL": "15m"})


def test_snapshots_are_reused_for_a_second() -> None:
    clock = Clock()
    cache = Snapshots(max_age=1.0, clock=clock)
    renders: list[int] = []

    def render() -> bytes:
        renders.append(1)
        return str(len(renders)).encode()

    assert cache.get("k", render) == b"1" and cache.get("k", render) == b"1"
    assert cache.get("other", render) == b"2"
    clock.now += 1.0
    assert cache.get("k", render) == b"3"
