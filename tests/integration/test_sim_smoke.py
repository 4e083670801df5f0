"""The simulator (bench/sim) runs end to end on a small network and reports sane figures.

Not a benchmark: 20 agents, one round of every change, checked for what the
figures must mean (each change reached the agents it must reach, bytes were
counted, enrolment and map builds were timed), never for speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENTS = 20
CELL = 10
KINDS = {"join", "leave", "revoke", "quarantine", "release", "flap_down", "flap_up", "policy"}


def test_simulator_measures_every_change_on_twenty_agents(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    command = [sys.executable, "-m", "bench.sim", "--agents", str(AGENTS), "--cell-size", str(CELL)]
    command += ["--rounds", "1", "--grace", "0.3", "--idle-seconds", "1", "--map-samples", "5"]
    command += ["--settle", "20", "--reconcile-interval", "20", "--json-out", str(out)]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr + done.stdout
    results = json.loads(out.read_text())

    assert results["enrolment"]["hosts"] == AGENTS - 2 and results["enrolment"]["hosts_per_s"] > 0
    assert results["start"]["timed_out"] is False
    for table in ("baseline_by_kind", "by_kind"):
        kinds = results[table]
        assert set(kinds) == KINDS
        for kind, row in kinds.items():
            assert (row["timed_out"], row["missed_agents"]) == (0, 0), (table, kind, row)
            assert row["to_last_agent_p50_ms"] > 0 and row["bytes_per_change_mean"] > 0, (table, kind)
    at_n = results["by_kind"]
    assert at_n["policy"]["affected_mean"] == AGENTS, "a policy edit reaches every map"
    assert at_n["quarantine"]["affected_mean"] >= CELL - 1, "a quarantine reaches the host's cell"
    assert at_n["join"]["affected_mean"] >= CELL, "a join reaches its cell and the new host"
    assert results["map_build"]["per_host_ms_p50"] > 0 and results["map_fetch"]["map_bytes_p50"] > 0
    assert results["controller_end"]["rss_mib"] > 0
    assert not [k for k, v in results["traffic"].items() if v["errors"]], results["traffic"]
    assert not list(tmp_path.glob("zsim-*")), "the run's directory is removed"
