"""``lab.json``: what a running lab remembers beyond what its name already says.

The topology can be rebuilt from (name, node count, underlay MTU, DNS back
end, controller count), so the file holds those plus what exists only at run
time: process ids, when the lab came up and how the agents were started. Cleanup never depends on it (see
``topology``), status and the test helpers do. Written atomically (temp file +
rename) so a crash never leaves half a record.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ztos.errors import InvalidInput, NotFound
from ztos.lab.topology import LabTopology, check_lab_name, state_dir


@dataclass(frozen=True)
class LabRecord:
    name: str
    node_count: int
    underlay_mtu: int
    reconcile_interval: float
    dns_backend: str = "embedded"
    controller_count: int = 1
    controller_pids: dict[int, int] = field(default_factory=dict)  # controller index -> pid
    agent_pids: dict[str, int] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def topology(self) -> LabTopology:
        return LabTopology(
            self.name, self.node_count, self.underlay_mtu, self.dns_backend, self.controller_count
        )

    @property
    def controller_pid(self) -> int | None:
        """Controller 1's pid (the only one unless the lab runs several)."""
        return self.controller_pids.get(1)

    def with_controller(self, index: int, pid: int | None) -> LabRecord:
        pids = {k: v for k, v in self.controller_pids.items() if k != index}
        if pid is not None:
            pids[index] = pid
        return replace(self, controller_pids=pids)

    def with_agent(self, host: str, pid: int | None) -> LabRecord:
        pids = {k: v for k, v in self.agent_pids.items() if k != host}
        if pid is not None:
            pids[host] = pid
        return replace(self, agent_pids=pids)


def lab_file(lab: str) -> Path:
    return state_dir(lab) / "lab.json"


def save(record: LabRecord) -> None:
    path = lab_file(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load(lab: str) -> LabRecord:
    """The record of a running lab, or ``NotFound`` saying how to start one."""
    path = lab_file(check_lab_name(lab))
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotFound(f"lab {lab!r} is not up (no {path}): run 'ztos lab up --name {lab}'") from exc
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is unreadable ({exc}): run 'ztos lab down --name {lab}'") from exc
    return _from_json(lab, path, data)


def exists(lab: str) -> bool:
    return lab_file(lab).exists()


def remove(lab: str) -> None:
    lab_file(lab).unlink(missing_ok=True)


def _from_json(lab: str, path: Path, data: dict[str, Any]) -> LabRecord:
    try:
        return LabRecord(
            name=str(data["name"]),
            node_count=int(data["node_count"]),
            underlay_mtu=int(data["underlay_mtu"]),
            reconcile_interval=float(data["reconcile_interval"]),
            dns_backend=str(data.get("dns_backend", "embedded")),
            controller_count=int(data.get("controller_count", 1)),
            controller_pids=_controller_pids(data),
            agent_pids={str(k): int(v) for k, v in dict(data.get("agent_pids") or {}).items()},
            created_at=float(data.get("created_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a lab record ({exc}): run 'ztos lab down --name {lab}'") from exc


def _controller_pids(data: dict[str, Any]) -> dict[int, int]:
    """``controller_pids``; a record written before several controllers has ``controller_pid``."""
    if "controller_pids" in data:
        return {int(k): int(v) for k, v in dict(data["controller_pids"] or {}).items()}
    legacy = data.get("controller_pid")
    return {} if legacy is None else {1: int(legacy)}
