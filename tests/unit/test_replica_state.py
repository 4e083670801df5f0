"""Two controllers over one directory share what used to be one process's memory:
posture report times, agent status, login codes and ended sessions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.controller import Controller, initialise_network
from ztos.controller.posture import POSTURE_SCOPE
from ztos.controller.sessions import EndedSessions, LoginCodes
from ztos.controller.status import STATUS_REFRESH, STATUS_SCOPE, AgentStatus, TenantReport
from ztos.controller.tenants import TenantRequest, create_tenant, set_attachment
from ztos.directory.sqlite import SqliteStore
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import EnrollRequest, TokenRequest
from ztos.errors import Unauthenticated
from ztos.keys import generate_wg_keypair
from ztos.model import Role

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """One wall clock both replicas read (seconds after ``START``)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> datetime:
        return START + timedelta(seconds=self.seconds)

    def epoch(self) -> float:
        return self().timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replicas(tmp_path: Path, clock: Clock) -> Iterator[tuple[Controller, Controller]]:
    path = str(tmp_path / "dir.db")
    first = SqliteStore(path)
    initialise_network(first, tmp_path / "pki", IdentityDir(tmp_path / "admin"), "test", 24 * 3600)
    second = SqliteStore(path)
    ca = pki.CertificateAuthority.load(tmp_path / "pki")
    yield (
        Controller(first, ca, ["https://a:8443"], clock, posture_timeout=30),
        Controller(second, ca, ["https://b:8443"], clock, posture_timeout=30),
    )
    first.close()
    second.close()


def enrol(controller: Controller, name: str) -> None:
    token = controller.create_token("admin:admin", TokenRequest(node_name=name)).token
    csr = pki.make_csr(pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
    key = generate_wg_keypair().public_key
    controller.enroll(EnrollRequest(token=token, node_name=name, csr_pem=csr, wg_public_key=key), "x")


def test_replica_b_does_not_mark_a_host_that_reports_to_a(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, b = replicas
    enrol(a, "h1")
    b.report_posture("h1", {"compliant": "true"})  # first report to B, then the host fails over to A
    for _ in range(20):  # ten minutes of reports every 30 s, all to A
        clock.seconds += 30
        a.report_posture("h1", {"compliant": "true"})
        assert b.expire_posture() == [] and a.expire_posture() == []
    assert b.get_node("h1").attributes["posture.compliant"] == "true"
    clock.seconds += 31  # silent past the timeout
    assert b.expire_posture() == ["h1"]
    assert a.expire_posture() == [], "one replica marks it, once"
    assert a.get_node("h1").attributes["posture.stale"] == "true"


def test_every_report_stores_its_time_and_silence_past_the_timeout_is_stale(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, b = replicas
    enrol(a, "h1")
    a.report_posture("h1", {"compliant": "true"})
    clock.seconds += 14
    a.report_posture("h1", {"compliant": "true"})
    assert a.store.get_state(POSTURE_SCOPE, "h1", clock.epoch()) == {"at": clock.epoch()}
    clock.seconds += 30
    assert b.expire_posture() == [], "silent for exactly the timeout: not yet"
    clock.seconds += 1
    assert b.expire_posture() == ["h1"], "marked as soon as the timeout has passed, not half a timeout later"


def test_posture_times_and_reports_are_no_node_visible_change(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, _ = replicas
    enrol(a, "h1")
    a.report_posture("h1", {"compliant": "true"})
    revision = a.store.revision()
    clock.seconds += 20
    a.report_posture("h1", {"compliant": "true"})  # refreshes the stored time
    a.put_agent_status("h1", AgentStatus())
    assert a.store.revision() == revision, "nothing a watch would wake on"


def test_agent_status_reported_to_a_is_shown_by_b(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, b = replicas
    enrol(a, "h1")
    create_tenant(a.store, "admin:admin", TenantRequest(name="blue", vni=100))
    set_attachment(a.store, "admin:admin", "blue", "h1", attached=True)
    report = AgentStatus(tenants=[TenantReport(name="blue", vni=100, remote_vteps=["fd00::2"])])
    a.put_agent_status("h1", report)
    shown = b.network_status().tenants[0].nodes[0]
    assert (shown.node, shown.remote_vteps, shown.reported_at) == ("h1", ["fd00::2"], clock())


def test_unchanged_status_is_rewritten_only_after_the_refresh(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, _ = replicas
    a.put_agent_status("h1", AgentStatus())
    first = a.store.get_state(STATUS_SCOPE, "h1", clock.epoch())
    clock.seconds += STATUS_REFRESH - 1
    a.put_agent_status("h1", AgentStatus())
    assert a.store.get_state(STATUS_SCOPE, "h1", clock.epoch()) == first
    changed = AgentStatus(tenants=[TenantReport(name="blue", vni=100)])
    a.put_agent_status("h1", changed)
    assert a.store.get_state(STATUS_SCOPE, "h1", clock.epoch())["at"] == clock.epoch()  # type: ignore[index]
    clock.seconds += STATUS_REFRESH
    a.put_agent_status("h1", changed)
    assert a.store.get_state(STATUS_SCOPE, "h1", clock.epoch())["at"] == clock.epoch()  # type: ignore[index]


def test_deleting_a_node_forgets_its_shared_state(
    replicas: tuple[Controller, Controller], clock: Clock
) -> None:
    a, b = replicas
    enrol(a, "h1")
    a.report_posture("h1", {"compliant": "true"})
    a.put_agent_status("h1", AgentStatus())
    b.delete_node("admin:admin", "h1")
    assert a.store.list_state(POSTURE_SCOPE, clock.epoch()) == {}
    assert a.store.list_state(STATUS_SCOPE, clock.epoch()) == {}


def test_login_code_made_on_a_is_redeemed_on_b_once(replicas: tuple[Controller, Controller]) -> None:
    a, b = replicas
    identity = pki.Identity(name="alice", role=Role.AUDITOR, serial="01")
    not_after = START + timedelta(days=1)
    code, _ = LoginCodes(a.store).create(identity, not_after, 300)
    redeemed = LoginCodes(b.store).redeem(code)
    assert (redeemed.claims_for, redeemed.not_after) == (identity, not_after)
    for replica in (a, b):
        with pytest.raises(Unauthenticated) as refused:
            LoginCodes(replica.store).redeem(code)
        assert refused.value.code == "login_code_refused"


def test_login_codes_are_stored_only_as_hashes(replicas: tuple[Controller, Controller]) -> None:
    a, _ = replicas
    identity = pki.Identity(name="alice", role=Role.AUDITOR, serial="01")
    code, _ = LoginCodes(a.store).create(identity, START + timedelta(days=1), 300)
    raw = Path(a.store.path).read_bytes() + Path(a.store.path + "-wal").read_bytes()  # type: ignore[attr-defined]
    assert code.encode() not in raw


def test_an_expired_login_code_is_refused(replicas: tuple[Controller, Controller]) -> None:
    a, b = replicas
    now = [1_800_000_000.0]
    identity = pki.Identity(name="alice", role=Role.AUDITOR, serial="01")
    code, _ = LoginCodes(a.store, lambda: now[0]).create(identity, START + timedelta(days=1), 300)
    now[0] += 300
    with pytest.raises(Unauthenticated):
        LoginCodes(b.store, lambda: now[0]).redeem(code)


def test_a_session_ended_on_a_is_ended_on_b_until_it_expires(replicas: tuple[Controller, Controller]) -> None:
    a, b = replicas
    now = [1_800_000_000.0]
    EndedSessions(a.store, lambda: now[0]).end("jti-1", int(now[0]) + 900)
    assert EndedSessions(b.store, lambda: now[0]).ended("jti-1")
    assert not EndedSessions(b.store, lambda: now[0]).ended("jti-2")
    now[0] += 900
    assert not EndedSessions(b.store, lambda: now[0]).ended("jti-1"), "forgotten once expired anyway"
