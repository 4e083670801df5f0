"""Roles and browser sessions against a real controller, for every route of its schema.

One controller (started with a 4 s session lifetime) serves the module. An
auditor and an operator are enrolled the way a person would be (``ztos token
create --role …`` then ``ztos enroll``). Every operation in the live OpenAPI
schema is called with each identity, by client certificate and by bearer
token: an auditor is refused (403) every write but a short list of
self-service calls on its own identity, and is let through every read; an
operator is refused every write but its own short list. New routes are
covered by default (admin-only), so a route that forgets its guard fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import ZTOS, RunningController, admin_client, start_controller
from ztos.client import tls_context
from ztos.directory import open_store
from ztos.enroll.identity_dir import IdentityDir
from ztos.model import CertificateRecord, utcnow

SESSION_TTL = 4
WRITE_METHODS = ("post", "put", "patch", "delete")
# Calls on one's own identity that are not changes to the network.
SELF_SERVICE = {
    ("post", "/api/v1/enroll"),  # anonymous: redeem a bootstrap token
    ("post", "/api/v1/certificates/renew"),  # renew one's own certificate
    ("post", "/api/v1/session"),  # a browser session for one's own certificate
    ("delete", "/api/v1/session"),  # log out
    ("post", "/api/v1/session/exchange"),  # anonymous: trade a login code
}
OPERATOR_WRITES = {
    ("post", "/api/v1/tokens"),
    ("post", "/api/v1/nodes"),
    ("post", "/api/v1/tenants/{name}/attach"),
    ("post", "/api/v1/tenants/{name}/detach"),
    ("post", "/api/v1/workloads"),
    ("delete", "/api/v1/workloads/{name}"),
}
# Dry runs that take their question as a body and change nothing (checked: the directory
# revision does not move during an auditor's sweep).
READ_ONLY_POSTS = {
    ("post", "/api/v1/policies/diff"),
    ("post", "/api/v1/policies/test"),
}
NODE_ONLY_READS = {("get", "/api/v1/netmap"), ("get", "/api/v1/netmap/update")}
BOUNDED = {"/api/v1/watch": {"timeout": 0}, "/api/v1/monitoring/stream": {"duration": 0.5}}


@dataclass
class Person:
    name: str
    state: Path

    def client(self, url: str) -> httpx.Client:
        identity = IdentityDir(self.state)
        return httpx.Client(base_url=url, verify=tls_context(identity.ca_cert, identity), timeout=30)


@dataclass
class World:
    controller: RunningController
    auditor: Person
    operator: Person
    schema: dict[str, Any]

    def anonymous(self) -> httpx.Client:
        ca = IdentityDir(self.controller.home).ca_cert
        return httpx.Client(base_url=self.controller.url, verify=tls_context(ca, None), timeout=30)


def enrol_person(controller: RunningController, tmp: Path, name: str, role: str) -> Person:
    profile = tmp / f"{name}.yaml"
    controller.ztos("token", "create", "--name", name, "--role", role, "--profile-out", str(profile))
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(tmp / name))
    return Person(name, tmp / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("roles")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZTOS_SESSION_TTL", str(SESSION_TTL))
        controller = start_controller(tmp)
    try:
        auditor = enrol_person(controller, tmp, "alice", "auditor")
        operator = enrol_person(controller, tmp, "olivia", "operator")
        with auditor.client(controller.url) as client:
            schema = client.get("/api/v1/openapi.json").json()
        yield World(controller, auditor, operator, schema)
    finally:
        controller.stop()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def call(
    client: httpx.Client, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    url = path.replace("{name}", "no-such-thing")
    body = {} if method in ("post", "put", "patch") else None
    return client.request(method.upper(), url, json=body, params=BOUNDED.get(path), headers=headers)


def bearer(client: httpx.Client) -> dict[str, str]:
    response = client.post("/api/v1/session")
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def sweep(world: World, person: Person, allowed_writes: set[tuple[str, str]], use_bearer: bool) -> None:
    """Call every operation; check 403 exactly where the role may not go, never 5xx."""
    role = "auditor" if person is world.auditor else "operator"
    wrong: list[str] = []
    with person.client(world.controller.url) as client:
        headers = bearer(client) if use_bearer else None
        minted = time.monotonic()
        revision = directory_revision(client)
        for method, path, op in operations(world.schema):
            if use_bearer and (method, path) == ("delete", "/api/v1/session"):
                continue  # logging out would end the sweep's session (test_logout_ends_the_session)
            if use_bearer and time.monotonic() - minted > SESSION_TTL / 2:
                # The module's sessions last 4 s (for the expiry tests); a sweep on a busy
                # machine takes longer. A new session is audited, so the auditor's
                # no-write check is made up to here and then starts again after it.
                if role == "auditor":
                    assert directory_revision(client) == revision, "an auditor changed the directory"
                headers, minted = bearer(client), time.monotonic()
                revision = directory_revision(client)
            response = call(client, method, path, headers)
            refused = response.status_code == 403
            if method in WRITE_METHODS:
                expect_refused = (method, path) not in allowed_writes | READ_ONLY_POSTS
            else:
                expect_refused = (method, path) in NODE_ONLY_READS
            declared = op.get("x-ztos-roles")
            if refused != expect_refused or response.status_code >= 500:
                wrong.append(f"{method.upper()} {path}: {response.status_code} {response.text[:120]}")
            elif declared is not None and (role in declared) == refused:
                wrong.append(
                    f"{method.upper()} {path}: x-ztos-roles {declared} disagrees with {response.status_code}"
                )
        if role == "auditor":
            assert directory_revision(client) == revision, "an auditor changed the directory"
    assert not wrong, "\n".join(wrong)


def directory_revision(client: httpx.Client) -> int:
    return int(client.get("/api/v1/watch", params={"since": 0, "timeout": 0}).json()["revision"])


@pytest.mark.parametrize("use_bearer", [False, True], ids=["certificate", "bearer"])
def test_auditor_is_refused_every_write_and_reads_everything(world: World, use_bearer: bool) -> None:
    assert len(operations(world.schema)) >= 30, "the schema lists the whole API"
    sweep(world, world.auditor, SELF_SERVICE, use_bearer)


@pytest.mark.parametrize("use_bearer", [False, True], ids=["certificate", "bearer"])
def test_operator_makes_day_to_day_changes_only(world: World, use_bearer: bool) -> None:
    sweep(world, world.operator, SELF_SERVICE | OPERATOR_WRITES, use_bearer)


def test_operator_creates_node_tokens_but_no_people(world: World) -> None:
    with world.operator.client(world.controller.url) as client:
        node = client.post("/api/v1/tokens", json={"node_name": "edge1", "role": "node"})
        assert node.status_code == 201, node.text
        for role in ("admin", "operator", "auditor"):
            refused = client.post("/api/v1/tokens", json={"node_name": "sneaky", "role": role})
            assert refused.status_code == 403, refused.text
            assert "may create tokens for node only" in refused.json()["detail"]
        refused = client.post("/api/v1/nodes/edge1/revoke", json={})
        assert refused.status_code == 403
    log = json.loads(world.controller.ztos("monitoring", "logs", "--outcome", "refused", "--json").stdout)
    assert any("may create tokens for node only" in e["detail"] for e in log["events"])


def test_bearer_tokens_work_expire_and_are_audited(world: World) -> None:
    with world.auditor.client(world.controller.url) as client:
        created = client.post("/api/v1/session").json()
        assert created["role"] == "auditor" and created["name"] == "alice"
    headers = {"Authorization": f"Bearer {created['token']}"}
    with world.anonymous() as browser:
        assert browser.get("/api/v1/nodes").status_code == 401, "no certificate, no token: refused"
        assert browser.get("/api/v1/nodes", headers=headers).status_code == 200
        me = browser.get("/api/v1/session", headers=headers).json()
        assert (me["name"], me["role"], me["via"]) == ("alice", "auditor", "certificate")
        assert browser.post("/api/v1/tenants", json={"name": "t"}, headers=headers).status_code == 403
        again = browser.post("/api/v1/session", headers=headers)
        assert again.status_code == 401, "a session cannot mint sessions"
        renew = browser.post("/api/v1/certificates/renew", json={"csr_pem": "x"}, headers=headers)
        assert renew.status_code == 401, "a session cannot get certificates"
        tampered = created["token"][:-2] + ("AA" if not created["token"].endswith("AA") else "BB")
        assert (
            browser.get("/api/v1/nodes", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
        )
        time.sleep(SESSION_TTL + 0.5)
        expired = browser.get("/api/v1/nodes", headers=headers)
        assert expired.status_code == 401 and expired.json()["error"] == "session_expired"
    log = json.loads(world.controller.ztos("monitoring", "logs", "--action", "session", "--json").stdout)
    assert any(e["action"] == "session.create" and e["actor"] == "auditor:alice" for e in log["events"])


def test_logout_ends_the_session(world: World) -> None:
    with world.operator.client(world.controller.url) as client:
        headers = bearer(client)
    with world.anonymous() as browser:
        assert browser.delete("/api/v1/session", headers=headers).status_code == 204
        assert browser.get("/api/v1/nodes", headers=headers).status_code == 401


def test_revoked_certificate_ends_its_sessions(world: World, tmp_path: Path) -> None:
    bob = enrol_person(world.controller, tmp_path, "bob", "auditor")
    with bob.client(world.controller.url) as client:
        headers = bearer(client)
        serial = client.get("/api/v1/session").json()["serial"]
    with world.anonymous() as browser:
        assert browser.get("/api/v1/nodes", headers=headers).status_code == 200
        # No verb revokes a person's certificate yet; the directory is where revocation lives.
        store = open_store(str(world.controller.db))
        try:
            with store.transaction() as tx:
                record = tx.get(CertificateRecord, serial)
                assert record is not None
                record.revoked_at, record.revoke_reason = utcnow(), "test"
                tx.put(record)
        finally:
            store.close()
        refused = browser.get("/api/v1/nodes", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "certificate_revoked"


def test_login_link_is_exchanged_once_for_a_browser_session(world: World) -> None:
    link = json.loads(world.controller.ztos("security", "login-link", "--role", "auditor", "--json").stdout)
    code = link["url"].split("#login=")[1]
    assert code == link["code"] and link["url"].startswith(world.controller.url)
    with world.anonymous() as browser:
        first = browser.post("/api/v1/session/exchange", json={"code": code})
        assert first.status_code == 201, first.text
        assert first.json()["role"] == "auditor"
        headers = {"Authorization": f"Bearer {first.json()['token']}"}
        assert browser.get("/api/v1/security/status", headers=headers).status_code == 200
        assert browser.post("/api/v1/network/configure", json={}, headers=headers).status_code == 403
        second = browser.post("/api/v1/session/exchange", json={"code": code})
        assert second.status_code == 401 and second.json()["error"] == "login_code_refused"
    with world.auditor.client(world.controller.url) as client:
        refused = client.post("/api/v1/session/login-code", json={"role": "auditor"})
        assert refused.status_code == 403, "only admins hand out login codes"
    log = json.loads(world.controller.ztos("monitoring", "logs", "--action", "session", "--json").stdout)
    actions = {(e["action"], e["outcome"]) for e in log["events"]}
    assert {
        ("session.login_code", "ok"),
        ("session.create", "ok"),
        ("session.exchange", "refused"),
    } <= actions


def test_metrics_are_protected_by_default(world: World) -> None:
    with world.anonymous() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with world.auditor.client(world.controller.url) as client:
        response = client.get("/metrics")
        assert response.status_code == 200 and "ztos_node_up" in response.text


def test_metrics_public_option_opens_metrics_only(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZTOS_METRICS_PUBLIC", "1")
        controller = start_controller(tmp_path)
    try:
        ca = IdentityDir(controller.home).ca_cert
        with httpx.Client(base_url=controller.url, verify=tls_context(ca, None)) as anonymous:
            assert anonymous.get("/metrics").status_code == 200
            assert anonymous.get("/api/v1/monitoring/metrics").status_code == 401
    finally:
        controller.stop()
    assert os.environ.get("ZTOS_METRICS_PUBLIC") is None


# --- the monitoring feeds a browser reads with its session -----------------------------------


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


def test_stream_ticks_carry_audit_events_and_end_with_the_session(world: World) -> None:
    # The write goes through an open admin connection, not a CLI process: starting one
    # can outlast the whole 4 s session on a loaded machine, and the tick it should
    # show in would never come.
    admin = admin_client(world.controller)
    admin.request("GET", "/api/v1/tenants")  # connected before the session's clock starts
    with world.auditor.client(world.controller.url) as client:
        token = client.post("/api/v1/session").json()["token"]
    ticks: list[dict[str, Any]] = []
    start = time.monotonic()
    with (
        world.anonymous() as browser,
        browser.stream("GET", "/api/v1/monitoring/stream", params={"access_token": token}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event, data in sse_events(response):
            if event == "end":
                assert data["error"] == "session_expired", data
                break
            ticks.append(data)
            if len(ticks) == 1:
                admin.request("POST", "/api/v1/tenants", json={"name": "streamed"})
    assert SESSION_TTL - 1 <= time.monotonic() - start <= SESSION_TTL + 4
    assert len(ticks) >= SESSION_TTL - 1, "about one tick a second"
    audit = [e for tick in ticks for e in tick["audit"]]
    assert any(e["action"] == "tenant.create" and e["target"] == "tenant:streamed" for e in audit)
    assert all(set(t) == {"at", "nodes", "links", "tenants", "audit"} for t in ticks)


def test_logs_filter_page_and_follow_from_the_cli(world: World) -> None:
    ztos = world.controller.ztos
    ztos("tenant", "create", "followed")
    page = json.loads(
        ztos("monitoring", "logs", "--action", "tenant.create", "--limit", "1", "--json").stdout
    )
    assert [e["action"] for e in page["events"]] == ["tenant.create"] and page["next_after"] > 0
    rest = json.loads(
        ztos("monitoring", "logs", "--action", "tenant", "--after", str(page["next_after"]), "--json").stdout
    )
    assert all(e["seq"] > page["next_after"] for e in rest["events"])
    assert json.loads(ztos("monitoring", "logs", "--since", "1h", "--json").stdout)["events"]
    assert not json.loads(ztos("monitoring", "logs", "--since", "2999-01-01T00:00:00", "--json").stdout)[
        "events"
    ]

    argv = [*ZTOS, "monitoring", "logs", "--follow", "--json", "--interval", "0.2", "--action", "tenant"]
    follower = subprocess.Popen(argv, env=world.controller.env, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, follower.kill)  # a hung follower fails the test, not the suite
    watchdog.start()
    seen: list[dict[str, Any]] = []
    try:
        assert follower.stdout is not None
        ztos("tenant", "create", "late")
        for line in follower.stdout:
            seen.append(json.loads(line))
            if seen[-1]["target"] == "tenant:late":
                break
    finally:
        watchdog.cancel()
        follower.terminate()
        follower.wait(timeout=10)
    assert seen and seen[-1]["target"] == "tenant:late", seen
    assert all(e["action"].startswith("tenant.") for e in seen)
    assert [e["seq"] for e in seen] == sorted({e["seq"] for e in seen}), "each event once, in order"
