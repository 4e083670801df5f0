"""The foundation end to end: a real controller process over TLS on loopback,
the real CLI, real mTLS clients, and every kind of bad input refused."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness import RunningController, admin_client, node_client
from ztos import errors, pki
from ztos.client import CONNECT_TIMEOUT, ApiClient
from ztos.enroll.identity_dir import IdentityDir
from ztos.keys import generate_wg_keypair
from ztos.model import Role


def make_profile(controller: RunningController, tmp_path: Path, name: str) -> Path:
    profile = tmp_path / f"{name}.yaml"
    controller.ztos("token", "create", "--name", name, "--ttl", "10m", "--profile-out", str(profile))
    return profile


def enroll(controller: RunningController, profile: Path, state: Path) -> Any:
    return controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(state), check=False)


def one_line_error(result: Any) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def test_enrol_list_revoke_and_refuse(controller: RunningController, tmp_path: Path) -> None:
    profile = make_profile(controller, tmp_path, "host1")
    state = tmp_path / "host1"
    assert enroll(controller, profile, state).returncode == 0
    assert "already enrolled" in enroll(controller, profile, state).stdout

    nodes = json.loads(controller.ztos("node", "list", "--json").stdout)
    assert [n["name"] for n in nodes] == ["host1"]
    assert nodes[0]["status"] == "active"

    host = node_client(controller, state)
    assert host.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"] > 0
    with pytest.raises(errors.Forbidden, match="needs admin"):
        host.request("GET", "/api/v1/nodes")

    controller.ztos("node", "revoke", "host1", "--reason", "lost laptop")
    with pytest.raises(errors.Unauthenticated) as refused:
        host.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})
    assert refused.value.code == "certificate_revoked"

    again = tmp_path / "host1-again"
    assert "already used" in one_line_error(enroll(controller, profile, again))
    status = json.loads(controller.ztos("security", "status", "--json").stdout)
    assert status["nodes_revoked"] == 1 and status["audit_chain_ok"]

    log = json.loads(controller.ztos("monitoring", "logs", "--verify", "--json").stdout)
    actions = [(e["action"], e["outcome"]) for e in log["events"]]
    assert ("enroll", "ok") in actions and ("node.revoke", "ok") in actions
    assert ("enroll", "refused") in actions and ("api.call", "refused") in actions
    assert log["chain_ok"] is True


def test_tampered_truncated_and_mispinned_profiles(controller: RunningController, tmp_path: Path) -> None:
    profile = make_profile(controller, tmp_path, "host2")
    data = yaml.safe_load(profile.read_text())
    cases = {
        "tampered": ({**data, "node_name": "host9"}, "altered"),
        "mispinned": ({**data, "ca_fingerprint": "0" * 64}, "fingerprint"),
    }
    for label, (body, message) in cases.items():
        path = tmp_path / f"{label}.yaml"
        path.write_text(yaml.safe_dump(body))
        assert message in one_line_error(enroll(controller, path, tmp_path / label))
    truncated = tmp_path / "truncated.yaml"
    truncated.write_text(profile.read_text()[:120])
    assert "truncated.yaml" in one_line_error(enroll(controller, truncated, tmp_path / "t"))
    assert enroll(controller, profile, tmp_path / "host2").returncode == 0, "original still usable"


def enroll_body(controller: RunningController, name: str, token_name: str | None = None) -> dict[str, Any]:
    created = admin_client(controller).request(
        "POST", "/api/v1/tokens", json={"node_name": token_name or name, "ttl_seconds": 600}
    )
    csr = pki.make_csr(pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
    return {
        "token": created["token"],
        "node_name": name,
        "csr_pem": csr,
        "wg_public_key": generate_wg_keypair().public_key,
    }


def post_enroll(controller: RunningController, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{controller.url}/api/v1/enroll", json=body, verify=False, timeout=10, **kwargs)


def test_enrolment_bad_inputs_change_nothing(controller: RunningController) -> None:
    before = len(admin_client(controller).request("GET", "/api/v1/nodes"))
    wrong_name = post_enroll(controller, enroll_body(controller, "host3", token_name="host4"))
    assert wrong_name.status_code == 403 and wrong_name.json()["error"] == "token_wrong_name"

    body = enroll_body(controller, "host5")
    der = bytearray(pki.load_csr(body["csr_pem"]).public_bytes(Encoding.DER))
    der[-1] ^= 1
    body["csr_pem"] = x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM).decode()
    bad_csr = post_enroll(controller, body)
    assert bad_csr.status_code == 400 and "proof of possession" in bad_csr.json()["detail"]

    malformed = httpx.post(
        f"{controller.url}/api/v1/enroll",
        content=b"{not json",
        verify=False,
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    invalid = post_enroll(controller, {**enroll_body(controller, "host6"), "node_name": "Bad_Name"})
    assert invalid.status_code == 422 and "node_name" in invalid.json()["detail"]
    huge = httpx.post(f"{controller.url}/api/v1/enroll", content=b"x" * 200_000, verify=False)
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    assert len(admin_client(controller).request("GET", "/api/v1/nodes")) == before
    # the token of the refused CSR was not consumed: it still enrols with a good CSR
    retry = enroll_body(controller, "host5")
    retry["token"] = body["token"]
    assert post_enroll(controller, retry).status_code == 200


def test_low_order_wireguard_keys_are_refused_at_enrolment(controller: RunningController) -> None:
    before = len(admin_client(controller).request("GET", "/api/v1/nodes"))
    body = enroll_body(controller, "host8")
    order_8 = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
    for point in (bytes(32), order_8):
        refused = post_enroll(controller, {**body, "wg_public_key": base64.b64encode(point).decode()})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_input"
        assert "wg_public_key" in refused.json()["detail"] and "low-order" in refused.json()["detail"]
    assert len(admin_client(controller).request("GET", "/api/v1/nodes")) == before
    assert post_enroll(controller, body).status_code == 200  # the token was not spent


def test_integers_beyond_the_store_answer_400(controller: RunningController, tmp_path: Path) -> None:
    profile = make_profile(controller, tmp_path, "host9")
    assert enroll(controller, profile, tmp_path / "host9").returncode == 0
    host = node_client(controller, tmp_path / "host9").session(controller.url)
    admin = admin_client(controller).session(controller.url)
    refused = [
        (host, "/api/v1/watch", {"since": "9223372036854775808", "timeout": "0"}, "since"),
        (admin, "/api/v1/watch", {"since": "1" + "0" * 40, "timeout": "0"}, "since"),
        (admin, "/api/v1/monitoring/logs", {"after": "100000000000000000000"}, "after"),
        (admin, "/api/v1/monitoring/stream", {"after": str(2**63), "duration": "0.5"}, "after"),
    ]
    for client, path, params, name in refused:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == "invalid_input" and f"query.{name}" in response.json()["detail"]
    # the largest value the store holds is a valid cursor: nothing after it
    largest = str(2**63 - 1)
    assert host.get("/api/v1/watch", params={"since": largest, "timeout": "0"}).json()["changes"] == []
    assert admin.get("/api/v1/monitoring/logs", params={"after": largest}).json()["events"] == []
    # a Last-Event-ID no seq can have resumes from now instead of breaking the stream
    for last_id in (b"1" + b"0" * 20, b"\xb2"):  # latin-1 superscript two: isdigit() but not int()
        params, headers = {"duration": "0.5"}, {"Last-Event-ID": last_id}
        with admin.stream("GET", "/api/v1/monitoring/stream", params=params, headers=headers) as sse:
            assert sse.status_code == 200
            text = sse.read().decode()
        assert "event: tick" in text and '"error": "duration"' in text, text[-500:]


def test_foreign_ca_certificate_is_refused_at_tls(controller: RunningController, tmp_path: Path) -> None:
    rogue = pki.CertificateAuthority.create(tmp_path / "rogue", "rogue")
    identity = IdentityDir(tmp_path / "rogue-admin")
    key = identity.ensure_tls_key()
    cert = rogue.issue_client(key.public_key(), "admin", Role.ADMIN, timedelta(hours=1))
    identity.store_certificate(pki.cert_to_pem(cert), (controller.home / "ca.crt").read_text())
    client = ApiClient.for_identity([controller.url], identity)
    with pytest.raises((errors.Unauthenticated, errors.Unreachable)):
        client.request("GET", "/api/v1/nodes")
    unauthenticated = httpx.get(f"{controller.url}/api/v1/nodes", verify=False)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "unauthenticated"


def test_watch_long_poll_wakes_on_change(controller: RunningController) -> None:
    admin = admin_client(controller)
    revision = admin.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    timer = threading.Timer(
        0.5, lambda: admin.request("POST", "/api/v1/tokens", json={"node_name": "later", "ttl_seconds": 600})
    )
    started = time.monotonic()
    timer.start()
    result = admin.request("GET", "/api/v1/watch", params={"since": revision, "timeout": 10})
    elapsed = time.monotonic() - started
    timer.join()
    assert 0.4 < elapsed < 5
    assert [c["kind"] for c in result["changes"]] == ["token"]
    assert result["changes"][0]["data"] is None, "token hashes are never sent"


def test_policy_apply_wakes_a_node_watch_without_any_record_data(
    controller: RunningController, tmp_path: Path
) -> None:
    profile = make_profile(controller, tmp_path, "host8")
    assert enroll(controller, profile, tmp_path / "host8").returncode == 0
    host = node_client(controller, tmp_path / "host8")
    admin = admin_client(controller)
    revision = host.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    policy = {"text": "version: 1\nrules: []\n", "source": "test"}
    timer = threading.Timer(0.5, lambda: admin.request("POST", "/api/v1/policies", json=policy))
    started = time.monotonic()
    timer.start()
    result = host.request("GET", "/api/v1/watch", params={"since": revision, "timeout": 10})
    elapsed = time.monotonic() - started
    timer.join()
    assert elapsed < 5, "the node slept through the policy change"
    assert result["changes"] == [
        {"rev": result["revision"], "kind": "map", "key": "host8", "op": "put", "data": None}
    ], "a node is told only that its own map changed, never a record"


class Blackhole:
    """A loopback port that accepts connections and never answers (a replica that hangs
    or vanished without a reset); counts the connections made to it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.listener.accept()[0])

    def close(self) -> None:
        for conn in [*self.accepted, self.listener]:
            conn.close()


def test_client_fails_over_within_the_connect_bound_and_sticks(controller: RunningController) -> None:
    hole = Blackhole()
    try:
        client = ApiClient.for_identity([hole.url, controller.url], IdentityDir(controller.home))
        started = time.monotonic()
        assert client.request("GET", "/api/v1/nodes") == []
        failover = time.monotonic() - started
        assert len(hole.accepted) == 1
        assert failover < CONNECT_TIMEOUT + 2.5, f"failover took {failover:.1f}s"
        for _ in range(3):
            client.request("GET", "/api/v1/nodes")
        assert len(hole.accepted) == 1, "the replica that answered is asked first from then on"
    finally:
        hole.close()


def test_foreign_directory_file_refused(controller: RunningController, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"definitely not sqlite" * 100)
    result = controller.ztos(
        "controller", "serve", "--db", str(foreign), "--listen", "127.0.0.1:1", check=False
    )
    assert "not a ZTOS directory" in one_line_error(result)
    assert foreign.read_bytes() == b"definitely not sqlite" * 100


def test_a_change_wakes_only_the_hosts_whose_map_it_changes(
    controller: RunningController, tmp_path: Path
) -> None:
    for name in ("near1", "far1"):
        assert enroll(controller, make_profile(controller, tmp_path, name), tmp_path / name).returncode == 0
    near, far = node_client(controller, tmp_path / "near1"), node_client(controller, tmp_path / "far1")
    admin = admin_client(controller)
    start = far.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    note = {"attributes": {"admin.note": "rack 4"}}  # no map holds another host's attributes while open
    timer = threading.Timer(0.3, lambda: admin.request("PUT", "/api/v1/nodes/near1/attributes", json=note))
    timer.start()
    slept = far.request("GET", "/api/v1/watch", params={"since": start, "timeout": 2})
    timer.join()
    assert slept["changes"] == [] and slept["revision"] > start, "far1's map did not change: not woken"
    woken = near.request("GET", "/api/v1/watch", params={"since": start, "timeout": 0})
    assert [c["key"] for c in woken["changes"]] == ["near1"]


def test_audit_log_tampering_is_detected(controller: RunningController, tmp_path: Path) -> None:
    make_profile(controller, tmp_path, "host7")
    assert controller.ztos("monitoring", "logs", "--verify").returncode == 0
    with sqlite3.connect(controller.db) as db:
        db.execute("UPDATE audit SET detail = 'nothing happened' WHERE seq = 2")
    result = controller.ztos("monitoring", "logs", "--verify", check=False)
    assert result.returncode == 3
    assert "audit chain broken at event 2" in one_line_error(result)


def test_last_seen_is_shown_and_its_write_wakes_no_watch(
    controller: RunningController, tmp_path: Path
) -> None:
    for name in ("seen1", "seen2"):
        assert enroll(controller, make_profile(controller, tmp_path, name), tmp_path / name).returncode == 0
    listed = {n["name"]: n for n in json.loads(controller.ztos("node", "list", "--json").stdout)}
    assert listed["seen1"]["last_seen"] is None and listed["seen2"]["last_seen"] is None
    assert "never" in controller.ztos("node", "list").stdout
    watcher = node_client(controller, tmp_path / "seen1")
    newcomer = node_client(controller, tmp_path / "seen2")
    revision = watcher.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    seen = json.loads(controller.ztos("node", "show", "seen1", "--json").stdout)["last_seen"]
    assert seen is not None, "an agent call sets last seen"
    again = watcher.request("GET", "/api/v1/watch", params={"since": revision, "timeout": 0})
    assert again["revision"] == revision
    assert json.loads(controller.ztos("node", "show", "seen1", "--json").stdout)["last_seen"] == seen, (
        "a second call within the interval writes nothing"
    )
    timer = threading.Timer(0.3, lambda: newcomer.request("GET", "/api/v1/netmap"))  # its first call
    timer.start()
    result = watcher.request("GET", "/api/v1/watch", params={"since": revision, "timeout": 2})
    timer.join()
    assert result["changes"] == [], "a last-seen write is nobody's news"
    assert result["revision"] > revision, "it was written, and skipped"
    assert json.loads(controller.ztos("node", "show", "seen2", "--json").stdout)["last_seen"] is not None
    assert "ago" in controller.ztos("node", "list").stdout
