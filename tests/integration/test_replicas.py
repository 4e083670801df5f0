"""Two real controller processes over one directory act as one controller: login codes,
sessions, posture freshness and agent status reported to A are known to B."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import RunningController, admin_client, node_client, start_controller, start_replica
from ztos.client import ApiClient, tls_context
from ztos.enroll.identity_dir import IdentityDir

POSTURE_TIMEOUT = 2.0  # seconds; a host is marked after 2-3 s of silence (+ one 0.5 s check)
SERVE_ARGS = ("--posture-timeout", str(POSTURE_TIMEOUT))


@dataclass
class Replicas:
    a: RunningController
    b: RunningController
    tmp: Path

    def browser(self, replica: RunningController) -> httpx.Client:
        ca = IdentityDir(replica.home).ca_cert
        return httpx.Client(base_url=replica.url, verify=tls_context(ca, None), timeout=30)

    def host(self, name: str) -> tuple[ApiClient, ApiClient]:
        """Enrol ``name`` (through A) and return its clients for A and for B."""
        profile = self.tmp / f"{name}.yaml"
        self.a.ztos("token", "create", "--name", name, "--ttl", "10m", "--profile-out", str(profile))
        state = self.tmp / name
        self.a.ztos("enroll", "--profile", str(profile), "--state-dir", str(state))
        return node_client(self.a, state), node_client(self.b, state)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    a = start_controller(tmp_path, SERVE_ARGS)
    try:
        b = start_replica(a, "replica-b", SERVE_ARGS)
        try:
            yield Replicas(a, b, tmp_path)
        finally:
            b.stop()
    finally:
        a.stop()


def login_code(replica: RunningController) -> str:
    link = json.loads(replica.ztos("security", "login-link", "--role", "auditor", "--json").stdout)
    return str(link["code"])


def test_login_code_made_on_a_is_redeemed_on_b_exactly_once(replicas: Replicas) -> None:
    code = login_code(replicas.a)
    with replicas.browser(replicas.b) as on_b, replicas.browser(replicas.a) as on_a:
        first = on_b.post("/api/v1/session/exchange", json={"code": code})
        assert first.status_code == 201, first.text
        for browser in (on_b, on_a):
            again = browser.post("/api/v1/session/exchange", json={"code": code})
            assert again.status_code == 401 and again.json()["error"] == "login_code_refused"


def test_two_replicas_redeeming_one_code_at_once_issue_one_session(replicas: Replicas) -> None:
    codes = [login_code(replicas.a) for _ in range(5)]
    with replicas.browser(replicas.a) as on_a, replicas.browser(replicas.b) as on_b:
        for code in codes:
            answers = [b.post("/api/v1/session/exchange", json={"code": code}) for b in (on_a, on_b)]
            assert sorted(r.status_code for r in answers) == [201, 401]


def test_session_made_on_a_works_on_b_and_its_logout_ends_it_on_b(replicas: Replicas) -> None:
    with replicas.browser(replicas.a) as on_a, replicas.browser(replicas.b) as on_b:
        created = on_a.post("/api/v1/session/exchange", json={"code": login_code(replicas.a)})
        headers = {"Authorization": f"Bearer {created.json()['token']}"}
        assert on_b.get("/api/v1/security/status", headers=headers).status_code == 200
        assert on_a.delete("/api/v1/session", headers=headers).status_code == 204
        refused = on_b.get("/api/v1/security/status", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "session_expired"


def attributes(replica: RunningController, name: str) -> dict[str, str]:
    """Through the API, not the CLI: these checks race the posture timeout."""
    return dict(admin_client(replica).request("GET", f"/api/v1/nodes/{name}")["attributes"])


def stale_marks(replica: RunningController, name: str) -> list[dict[str, Any]]:
    params = {"action": "node", "limit": 1000}
    page = admin_client(replica).request("GET", "/api/v1/monitoring/logs", params=params)
    marks = [e for e in page["events"] if e["actor"] == "controller" and e["target"] == f"node:{name}"]
    return [e for e in marks if "posture.stale=true" in e["detail"]]


def test_host_reporting_to_a_is_not_marked_stale_by_b(replicas: Replicas) -> None:
    to_a, to_b = replicas.host("zr-h1")
    report = {"attributes": {"compliant": "true"}}
    to_b.request("PUT", "/api/v1/nodes/self/posture", json=report)  # first to B, then it fails over to A
    deadline = time.monotonic() + 3 * POSTURE_TIMEOUT
    while time.monotonic() < deadline:  # bounded: reports every 0.3 s for three timeouts
        to_a.request("PUT", "/api/v1/nodes/self/posture", json=report)
        assert attributes(replicas.b, "zr-h1")["posture.compliant"] == "true"
        time.sleep(0.3)
    assert stale_marks(replicas.b, "zr-h1") == [], "no replica marked a host that kept reporting"

    deadline = time.monotonic() + 3 * POSTURE_TIMEOUT  # now silent: marked within 3 s + a check
    while "posture.stale" not in attributes(replicas.b, "zr-h1"):
        assert time.monotonic() < deadline, "a silent host was never marked non-compliant"
        time.sleep(0.2)
    assert attributes(replicas.a, "zr-h1")["posture.compliant"] == "false"
    assert len(stale_marks(replicas.a, "zr-h1")) == 1, "marked once, by one replica"


def test_agent_status_reported_to_a_is_shown_by_b(replicas: Replicas) -> None:
    to_a, _ = replicas.host("zr-h2")
    status = {"tenants": [], "bgp": [{"peer": "fd00::1", "state": "Established", "prefixes_received": 3}]}
    to_a.request("PUT", "/api/v1/nodes/self/status", json=status)
    shown = json.loads(replicas.b.ztos("network", "status", "--json").stdout)
    assert shown["bgp_sessions"]["zr-h2"] == status["bgp"]
    _, to_b = replicas.host("zr-h3")
    other = {"tenants": [], "bgp": [{"peer": "fd00::2", "state": "Idle", "prefixes_received": None}]}
    to_b.request("PUT", "/api/v1/nodes/self/status", json=other)
    on_a = json.loads(replicas.a.ztos("network", "status", "--json").stdout)["bgp_sessions"]
    assert on_a == {"zr-h2": status["bgp"], "zr-h3": other["bgp"]}


def test_posture_timeout_must_be_positive(controller: RunningController) -> None:
    for bad in ("0", "-1", "nan"):
        refused = controller.ztos(
            "controller", "serve", "--db", str(controller.db), "--posture-timeout", bad, check=False
        )
        assert refused.returncode == 1 and "--posture-timeout must be more than 0" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_a_write_resent_to_the_other_replica_is_applied_once(replicas: Replicas) -> None:
    """What the client does when its controller dies mid-POST: the same Idempotency-Key
    to the next replica. The write happens once; the resend is told so."""
    on_a, on_b = (admin_client(r).session(r.url) for r in (replicas.a, replicas.b))
    headers = {"Idempotency-Key": "zr-7f3a9c1e2b4d"}
    first = on_a.post("/api/v1/tenants", json={"name": "once"}, headers=headers)
    again = on_b.post("/api/v1/tenants", json={"name": "once"}, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 409 and again.json()["error"] == "duplicate_request", again.text
    logs = json.loads(replicas.a.ztos("monitoring", "logs", "--action", "tenant.create", "--json").stdout)
    assert [e["target"] for e in logs["events"]] == ["tenant:once"]
    other = on_b.post("/api/v1/tenants", json={"name": "twice"}, headers={"Idempotency-Key": "zr-other-key"})
    assert other.status_code == 201, "another key is another write"
    bad = on_a.post("/api/v1/tenants", json={"name": "bad"}, headers={"Idempotency-Key": "x y"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_input"
    assert "bad" not in {t["name"] for t in on_a.get("/api/v1/tenants").json()}
