"""The simulated network as plain data: hosts in cells, and the policy that pairs each cell.

Every host carries the tag of its cell (``tags`` attribute, set by its
enrolment token) and ``admin.healthy=true``. The policy has one rule per
cell: its hosts reach each other on tcp/22 while the source is healthy by the
admin's word and compliant by its own posture report. So under need-to-know
maps a host's peers are its cell mates, a quarantine or posture flap changes
the maps of exactly that cell, and a policy edit changes every map (each map
carries the policy bundle). The cell count is capped so the policy fits the
API's 64 KiB body limit: past ``MAX_CELLS`` cells the cells grow instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_CELLS = 600  # ~80 bytes a rule: the policy stays well under the 64 KiB body limit


@dataclass(frozen=True)
class Layout:
    hosts: int
    cell_size: int

    @classmethod
    def for_hosts(cls, hosts: int, cell_size: int) -> Layout:
        return cls(hosts, max(cell_size, math.ceil(hosts / MAX_CELLS)))

    @property
    def cells(self) -> int:
        return max(1, math.ceil(self.hosts / self.cell_size))

    def cell_of(self, index: int) -> str:
        return f"c{(index // self.cell_size) % self.cells}"


def host_name(index: int) -> str:
    return f"h{index}"


def token_attributes(cell: str) -> dict[str, str]:
    return {"tags": cell, "admin.healthy": "true"}


def policy_text(cells: int, edit: int) -> str:
    """The cell policy; ``edit`` changes cell c0's ports, so every apply is a real change."""
    ports = "[tcp/22]" if edit % 2 == 0 else "[tcp/22, tcp/2222]"
    lines = [
        "version: 1",
        "rules:",
        "  - {name: c0, from: {tags: [c0]}, to: {tags: [c0]}, ports: " + ports + ", when: &ok ["
        '{attr: device.admin.healthy, op: eq, value: "true"}, '
        '{attr: device.posture.compliant, op: eq, value: "true"}]}',
    ]
    for cell in range(1, cells):
        lines.append(
            f"  - {{name: c{cell}, from: {{tags: [c{cell}]}}, to: {{tags: [c{cell}]}}, "
            "ports: [tcp/22], when: *ok}"
        )
    return "\n".join(lines) + "\n"
