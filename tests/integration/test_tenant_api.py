"""Tenants, workloads and BGP settings through the real CLI and API: allocation and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from harness import RunningController, admin_client


def enrolled(controller: RunningController, tmp_path: Path, name: str) -> None:
    profile = tmp_path / f"{name}.yaml"
    controller.ztos("token", "create", "--name", name, "--profile-out", str(profile))
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(tmp_path / name))


def error_of(controller: RunningController, *args: str) -> str:
    result = controller.ztos(*args, check=False)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_tenants_workloads_and_their_refusals(controller: RunningController, tmp_path: Path) -> None:
    enrolled(controller, tmp_path, "h1")
    blue = json.loads(controller.ztos("tenant", "create", "blue", "--ipv4", "10.20.0.0/24", "--json").stdout)
    red = json.loads(controller.ztos("tenant", "create", "red", "--ipv4", "10.20.0.0/24", "--json").stdout)
    assert (blue["vni"], red["vni"]) == (100, 101), "VNIs are allocated"
    assert blue["ipv6_prefix"] != red["ipv6_prefix"] and blue["ipv4_prefix"] == red["ipv4_prefix"]
    assert "already used" in error_of(controller, "tenant", "create", "green", "--vni", "100")
    assert "not an IPv4 CIDR" in error_of(controller, "tenant", "create", "green", "--ipv4", "10.20.0.1/24")
    assert "no node named 'nope'" in error_of(controller, "tenant", "attach", "blue", "--node", "nope")
    assert "not attached" in error_of(controller, "workload", "add", "blue", "--node", "h1", "--name", "web")

    controller.ztos("tenant", "attach", "blue", "--node", "h1")
    web = json.loads(
        controller.ztos("workload", "add", "blue", "--node", "h1", "--name", "web", "--json").stdout
    )
    assert web["ipv4"] == "10.20.0.10/24" and web["ipv6"].startswith(blue["ipv6_prefix"].split("::")[0])
    assert "already exists" in error_of(
        controller, "workload", "add", "blue", "--node", "h1", "--name", "web"
    )

    controller.ztos("tenant", "detach", "blue", "--node", "h1")
    assert json.loads(controller.ztos("workload", "list", "--json").stdout) == [], "detach removes workloads"
    tenants = json.loads(controller.ztos("tenant", "list", "--json").stdout)
    assert [t["nodes"] for t in tenants] == [[], []]


def test_network_configure_validates_bgp_settings(controller: RunningController) -> None:
    assert "--as is required" in error_of(controller, "network", "configure", "--bgp")
    assert "less than or equal" in error_of(controller, "network", "configure", "--bgp", "--as", "4294967296")
    assert "greater than or equal" in error_of(controller, "network", "configure", "--bgp", "--as", "0")
    assert "peers.0" in error_of(
        controller, "network", "configure", "--bgp", "--as", "65000", "--peer", "2001:db8::zz"
    )
    dup = ["network", "configure", "--bgp", "--as", "65000", "--peer", "2001:db8::1", "--peer", "2001:db8::1"]
    assert "duplicate BGP peer 2001:db8::1" in error_of(controller, *dup)
    ok = controller.ztos("network", "configure", "--bgp", "--as", "65000", "--peer", "2001:db8::1", "--json")
    assert json.loads(ok.stdout)["bgp"] == {
        "asn": 65000,
        "evpn": True,
        "peers": [{"address": "2001:db8::1", "asn": 65000}],
    }
    status = json.loads(controller.ztos("network", "status", "--json").stdout)
    assert status["bgp"]["asn"] == 65000
    off = json.loads(controller.ztos("network", "configure", "--no-bgp", "--json").stdout)
    assert off["bgp"] is None
    log = json.loads(controller.ztos("monitoring", "logs", "--json").stdout)
    assert sum(e["action"] == "network.configure" for e in log["events"]) == 2


def test_node_view_follows_attach_and_detach_after_enrolment(
    controller: RunningController, tmp_path: Path
) -> None:
    """What ``GET /api/v1/nodes/{name}`` (the dashboard, ``node show``) says a node serves
    is what the tenants say, also after changes made once the node enrolled."""
    controller.ztos("tenant", "create", "blue")
    controller.ztos("tenant", "create", "red")
    unknown = error_of(controller, "token", "create", "--name", "h2", "--tenant", "green")
    assert "unknown tenant green" in unknown
    profile = tmp_path / "h2.yaml"
    controller.ztos("token", "create", "--name", "h2", "--tenant", "blue", "--profile-out", str(profile))
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(tmp_path / "h2"))
    admin = admin_client(controller)

    def tenants_shown() -> tuple[list[str], list[str]]:
        listed = [n["tenants"] for n in admin.request("GET", "/api/v1/nodes") if n["name"] == "h2"]
        return admin.request("GET", "/api/v1/nodes/h2")["tenants"], listed[0]

    assert tenants_shown() == (["blue"], ["blue"]), "the token's tenant is joined on the tenant"
    controller.ztos("tenant", "detach", "blue", "--node", "h2")
    controller.ztos("tenant", "attach", "red", "--node", "h2")
    assert tenants_shown() == (["red"], ["red"])
    shown = json.loads(controller.ztos("node", "show", "h2", "--json").stdout)
    assert shown["tenants"] == ["red"]
    tenants = {t["name"]: t["nodes"] for t in json.loads(controller.ztos("tenant", "list", "--json").stdout)}
    assert tenants == {"blue": [], "red": ["h2"]}
