"""A compromised host against a real controller: it cannot overrule the admin's verdict,
grow its record without bound, or point its peers at another host's endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import RunningController, node_client
from ztos import errors
from ztos.client import ApiClient


def enrolled(controller: RunningController, tmp_path: Path, name: str) -> ApiClient:
    profile = tmp_path / f"{name}.yaml"
    controller.ztos("token", "create", "--name", name, "--ttl", "10m", "--profile-out", str(profile))
    state = tmp_path / name
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(state))
    return node_client(controller, state)


def node(controller: RunningController, name: str) -> Any:
    return json.loads(controller.ztos("node", "show", name, "--json").stdout)


def test_admin_verdict_stands_against_the_hosts_reports(
    controller: RunningController, tmp_path: Path
) -> None:
    host = enrolled(controller, tmp_path, "zh4a")
    refused = controller.ztos("node", "set-attr", "zh4a", "posture.healthy=false", check=False)
    assert refused.returncode != 0 and "admin.healthy" in refused.stderr, refused.stderr
    controller.ztos("node", "set-attr", "zh4a", "admin.healthy=false")

    for report in ({"healthy": "true"}, {"posture.healthy": "true"}, {"healthy": None}):
        host.request("PUT", "/api/v1/nodes/self/posture", json={"attributes": report})
    for key in ("admin.healthy", "admin.x"):
        for value in ("true", None):
            with pytest.raises(errors.Forbidden, match=key):
                host.request("PUT", "/api/v1/nodes/self/posture", json={"attributes": {key: value}})
    assert node(controller, "zh4a")["attributes"]["admin.healthy"] == "false"


def test_host_record_is_bounded(controller: RunningController, tmp_path: Path) -> None:
    host = enrolled(controller, tmp_path, "zh4b")
    with pytest.raises(errors.InvalidInput) as refused:
        for round_ in range(15):
            batch = {f"r{round_}.k{i}": "v" for i in range(64)}
            host.request("PUT", "/api/v1/nodes/self/posture", json={"attributes": batch})
    assert refused.value.code == "too_many_attributes"
    assert len(node(controller, "zh4b")["attributes"]) <= 64


def test_forged_endpoint_is_not_handed_to_peers(controller: RunningController, tmp_path: Path) -> None:
    first, forger, viewer = (enrolled(controller, tmp_path, n) for n in ("zh4c", "zh4d", "zh4e"))
    first.request("PUT", "/api/v1/nodes/self/report", json={"endpoints": ["[2001:db8::c]:51820"]})
    forger.request(
        "PUT", "/api/v1/nodes/self/report", json={"endpoints": ["[2001:db8::c]:51820", "192.0.2.13:51820"]}
    )
    peers = {p["name"]: p["endpoint"] for p in viewer.request("GET", "/api/v1/netmap")["peers"]}
    assert peers["zh4c"] == "[2001:db8::c]:51820"
    assert peers["zh4d"] == "192.0.2.13:51820", "the forged claim on zh4c's address is dropped"
