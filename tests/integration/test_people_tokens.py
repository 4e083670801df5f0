"""Offboarding people and killing tokens against a real controller, and refusals audited
(rate-limited per identity, so a looping client cannot flood the log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import RunningController, node_client
from ztos import errors


def enrol_person(controller: RunningController, tmp_path: Path, name: str, role: str) -> Path:
    profile, state = tmp_path / f"{name}.yaml", tmp_path / name
    controller.ztos("token", "create", "--name", name, "--role", role, "--profile-out", str(profile))
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(state))
    return state


def refused_events(controller: RunningController) -> list[dict[str, Any]]:
    out = controller.ztos("monitoring", "logs", "--outcome", "refused", "--json").stdout
    events: list[dict[str, Any]] = json.loads(out)["events"]
    return events


def test_revoked_user_is_refused_at_once_and_audited(controller: RunningController, tmp_path: Path) -> None:
    state = enrol_person(controller, tmp_path, "zh6-alice", "operator")
    alice = node_client(controller, state)
    assert alice.request("GET", "/api/v1/nodes") == []

    users = json.loads(controller.ztos("user", "list", "--json").stdout)
    assert {u["name"] for u in users} >= {"admin", "zh6-alice"}
    controller.ztos("user", "revoke", "zh6-alice", "--reason", "left the company")
    shown = json.loads(controller.ztos("user", "show", "zh6-alice", "--json").stdout)
    assert shown["revoked"] is True and all(c["revoked"] for c in shown["certificates"])

    with pytest.raises(errors.Unauthenticated) as refused:
        alice.request("GET", "/api/v1/nodes")
    assert refused.value.code == "certificate_revoked"

    events = refused_events(controller)
    mine = [e for e in events if "zh6-alice" in e["actor"] and "certificate_revoked" in e["detail"]]
    assert mine, events
    serials = {c["serial"] for c in shown["certificates"]}
    assert any(serial in e["actor"] for e in mine for serial in serials), "the refusal names the certificate"
    log = json.loads(controller.ztos("monitoring", "logs", "--action", "user.revoke", "--json").stdout)
    assert [e["target"] for e in log["events"]] == ["user:zh6-alice"]


def test_revoked_token_cannot_enrol_and_list_shows_no_secret(
    controller: RunningController, tmp_path: Path
) -> None:
    profile = tmp_path / "zh6-h1.yaml"
    out = controller.ztos("token", "create", "--name", "zh6-h1", "--profile-out", str(profile), "--json")
    created = json.loads(out.stdout)
    listed = controller.ztos("token", "list", "--json").stdout
    assert created["token"] not in listed and created["token"].split(".")[-1] not in listed
    tokens = json.loads(listed)
    assert [t["id"] for t in tokens] == [created["id"]]
    assert set(tokens[0]) == {"id", "node_name", "role", "created_by", "expires_at", "used", "revoked"}

    controller.ztos("token", "revoke", created["id"])
    state = str(tmp_path / "h1")
    result = controller.ztos("enroll", "--profile", str(profile), "--state-dir", state, check=False)
    assert result.returncode != 0 and "revoked" in result.stderr, result.stderr
    assert json.loads(controller.ztos("token", "list", "--json").stdout)[0]["revoked"] is True
    assert json.loads(controller.ztos("node", "list", "--json").stdout) == []
    refusals = [e for e in refused_events(controller) if e["action"] == "enroll"]
    assert refusals and "token_revoked" in refusals[-1]["detail"]


def test_a_looping_refused_client_writes_a_bounded_number_of_records(
    controller: RunningController, tmp_path: Path
) -> None:
    state = enrol_person(controller, tmp_path, "zh6-bob", "auditor")
    bob = node_client(controller, state)
    controller.ztos("user", "revoke", "zh6-bob")
    for _ in range(50):
        with pytest.raises(errors.Unauthenticated):
            bob.request("GET", "/api/v1/nodes")
    mine = [e for e in refused_events(controller) if "zh6-bob" in e["actor"]]
    assert 1 <= len(mine) <= 2, mine
    status = json.loads(controller.ztos("security", "status", "--json").stdout)
    alerts = [a for a in status["repeated_refusals"] if "zh6-bob" in a["identity"]]
    assert alerts and alerts[0]["count"] >= 50 and alerts[0]["reason"] == "certificate_revoked"
