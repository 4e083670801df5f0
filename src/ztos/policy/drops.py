"""Name the identities in a ``ztos-drop`` kernel log line (``ztos policy drops``).

The kernel log prefix is fixed per log rule, so it names the tenant and the
sending port's workload (or ``remote``/``gateway``), never both ends; the
line itself carries both addresses. This turns one such line back into
identities with the snapshot, scoped to the tenant so that overlapping tenant
ranges resolve correctly. IPv6 addresses come fully expanded from the kernel
(``fd00:0030:0000:…``): they are compared as addresses, not text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ztos.policy.snapshot import Snapshot

LINE_RE = re.compile(
    r"ztos-(?P<kind>drop|spoof) (?P<scope>\S+?)(?: (?P<who>\S+?))?: .*?"
    r"SRC=(?P<src>\S+) DST=(?P<dst>\S+) .*?PROTO=(?P<proto>\S+)(?:.*? DPT=(?P<dport>\d+))?"
)


@dataclass(frozen=True)
class DropEvent:
    kind: str  # drop | spoof
    scope: str  # a tenant, or "host"
    src: str  # identity name, else the address
    dst: str
    proto: str
    port: int | None

    def __str__(self) -> str:
        flow = self.proto if self.port is None else f"{self.proto}/{self.port}"
        return (
            f"{self.scope}: {self.src} -> {self.dst} {flow} {'dropped' if self.kind == 'drop' else 'spoofed'}"
        )


def name_drop(line: str, snapshot: Snapshot) -> DropEvent | None:
    """The drop a kernel log line reports, with names where the snapshot knows them."""
    found = LINE_RE.search(line)
    if not found:
        return None
    scope = found["scope"]
    names = _names(snapshot, scope)
    port = int(found["dport"]) if found["dport"] else None
    return DropEvent(
        kind=found["kind"],
        scope=scope,
        src=names.get(_address(found["src"]), found["src"]),
        dst=names.get(_address(found["dst"]), found["dst"]),
        proto=found["proto"].lower(),
        port=port,
    )


def _names(snapshot: Snapshot, scope: str) -> dict[str, str]:
    if scope == "host":
        return {_address(a): n.name for n in snapshot.nodes.values() for a in n.addresses}
    return {
        _address(a): w.name for w in snapshot.workloads.values() if w.tenant == scope for a in w.addresses
    }


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
