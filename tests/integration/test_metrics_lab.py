"""Agents' counters end to end: a 2-host lab, real traffic, /metrics and ``monitoring top``.

Both agents report after every pass (1 s here); traffic over the overlay (a
2 s ping flood) must show up as grown per-peer byte counters on ``/metrics``
(fetched as Prometheus text by the lab admin, through the real API and
mTLS), as a rate in the JSON view, and the live view must list both hosts.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import require_root_tools
from ztos.lab import checks, commands, runner
from ztos.lab.topology import LabHost, LabTopology

RECONCILE_INTERVAL = 1.0
GROWTH_BYTES = 200_000


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "ping")
    name = "q" + secrets.token_hex(2)
    topology = LabTopology(name, 2)
    try:
        runner.up(topology, reconcile_interval=RECONCILE_INTERVAL)
        checks.wait_converged(name, timeout=60)
        yield topology
    finally:
        runner.down(name)


def eventually(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout}s")


def peer_bytes(lab: LabTopology) -> dict[tuple[str, str, str], float]:
    """``(metric, node, peer) -> value`` from ``GET /metrics``."""
    text = runner.run_admin(lab.name, "monitoring", "metrics", "--prometheus")
    return {
        (sample.name, sample.labels["node"], sample.labels["peer"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("ztos_peer_")
    }


def overlay6(host: LabHost) -> str:
    return str(json.loads(host.enrolment.read_text())["node"]["overlay_ipv6"])


def flood(source: LabHost, target: LabHost, seconds: int) -> None:
    argv = ["ip", "netns", "exec", source.netns, "ping", "-f", "-q", "-s", "1200", "-w", str(seconds)]
    subprocess.run([*argv, overlay6(target)], capture_output=True, timeout=seconds + 10, check=False)


def test_per_peer_bytes_grow_while_traffic_flows(lab: LabTopology) -> None:
    h1, h2 = lab.hosts
    tx, rx = ("ztos_peer_tx_bytes_total", "h1", "h2"), ("ztos_peer_rx_bytes_total", "h2", "h1")
    before = eventually(
        lambda: (s := peer_bytes(lab)).get(tx) is not None and rx in s and s, 20, "h1's report"
    )
    flood(h1, h2, 2)
    after = eventually(
        lambda: (s := peer_bytes(lab))[tx] - before[tx] > GROWTH_BYTES and s,
        10,
        f"h1's bytes to h2 growing by {GROWTH_BYTES}",
    )
    assert after[rx] - before[rx] > GROWTH_BYTES, "h2 received what h1 sent"
    assert after[("ztos_peer_handshake_age_seconds", "h1", "h2")] < 180

    view = json.loads(runner.run_admin(lab.name, "monitoring", "metrics", "--json"))
    nodes = {n["node"]: n for n in view["nodes"]}
    assert nodes["h1"]["up"] and nodes["h2"]["up"]
    assert nodes["h1"]["history"], "a history for the dashboard"
    history = nodes["h1"]["history"]
    shown = f"{before} {after} {history}"
    assert max(p["tx_rate"] for p in history) > 10_000, f"the flood shows as a rate: {shown}"


def test_top_once_shows_both_hosts_up(lab: LabTopology) -> None:
    frame = runner.run_admin(lab.name, "monitoring", "top", "--once")
    rows = [line for line in frame.splitlines() if line.strip().startswith("│")]
    hosts = {cells[1].strip(): line for line in rows if (cells := line.split("│"))[1].strip()}
    assert set(hosts) == {"h1", "h2"}, frame
    assert all(" up " in line for line in hosts.values()), frame
    assert "2/2 up" in frame


def api_get(lab: LabTopology, path: str) -> Any:
    """GET as the lab admin from the underlay namespace, where the controller listens."""
    code = (
        "import json, sys; from ztos.cli.context import CliState; "
        f"print(json.dumps(CliState().client().request('GET', {path!r})))"
    )
    argv = ["ip", "netns", "exec", lab.underlay_netns, sys.executable, "-c", code]
    result = subprocess.run(argv, env=commands.admin_env(lab), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_security_status_has_each_hosts_key_certificate_and_handshake(lab: LabTopology) -> None:
    status = api_get(lab, "/api/v1/security/status")
    hosts = {h["name"]: h for h in status["hosts"]}
    assert set(hosts) == {"h1", "h2"}
    for host in hosts.values():
        assert host["wg_public_key"] and host["wg_key_age_seconds"] >= 0
        assert host["cert_serial"] and host["cert_expires_in_seconds"] > 0 and not host["cert_revoked"]
        assert host["last_handshake_age_seconds"] is not None and host["macsec"] == "n/a"
