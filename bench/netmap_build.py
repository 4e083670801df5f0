"""Benchmark: need-to-know node-map build time per host (issue 11).

A synthetic directory of ``--nodes`` hosts (default 1,000; tenants of 10
hosts each, two workloads per host with owners in 20 groups, posture
attributes on every host) and a policy of ``--rules`` rules (default 100:
group-to-tenant rules with a posture condition, service rules, and host
rules between node groups). Measured in the same run:

* **resolve**: ``Reach`` over the whole directory, once per directory
  revision (the controller caches it);
* **need-to-know map**: one host's map and trimmed snapshot, per host, for
  ``--samples`` hosts;
* **baseline, open map**: the same host's map with every peer and no policy
  (what an open network builds), so the ratio shows what need to know adds.

* **posture flap step**: what one posture report that flips a condition-read
  attribute costs a controller process: moving its directory by that change
  and judging which hosts it concerns (``controller.audience``), with the
  number of hosts woken, as a ratio to resolving the whole directory again.

Pure CPU, no I/O: ``.venv/bin/python bench/netmap_build.py [--nodes N]
[--rules N] [--samples N] [--json-out FILE]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import statistics
import time
from collections.abc import Callable

from ztos import addressing, tenancy
from ztos.controller.audience import affected
from ztos.controller.nodemaps import Directory, advanced, directory_of, node_map
from ztos.directory import Change
from ztos.keys import generate_wg_keypair
from ztos.model import Group, Network, Node, PolicyRevision, Tenant, User, Workload

NETWORK = Network(
    ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"), ipv4_prefix=ipaddress.IPv4Network("10.64.0.0/10")
)
PER_TENANT = 10
GROUPS = 20


def directory(count: int) -> tuple[list[Node], list[Tenant], list[Workload], list[User], list[Group]]:
    nodes = []
    for i in range(count):
        key = generate_wg_keypair().public_key
        nodes.append(
            Node(
                name=f"h{i}",
                wg_public_key=key,
                overlay_ipv6=addressing.overlay_ipv6(NETWORK.ula_prefix, key),
                overlay_ipv4=NETWORK.ipv4_prefix[i + 10],
                endpoints=[f"[2001:db8::{i + 1:x}]:51820"],
                cert_serial=f"{i:x}",
                attributes={"posture.healthy": "true", "posture.os": "linux", "location": f"dc{i % 7}"},
            )
        )
    tenants = [
        Tenant(
            name=f"t{t}",
            vni=100 + t,
            ipv6_prefix=ipaddress.IPv6Network(f"fd12:3456:789a:{t + 1:x}::/64"),
            nodes=[f"h{i}" for i in range(t * PER_TENANT, min(count, (t + 1) * PER_TENANT))],
        )
        for t in range((count + PER_TENANT - 1) // PER_TENANT)
    ]
    users = [User(name=f"u{u}", groups=[f"g{u % GROUPS}"]) for u in range(count // 2)]
    workloads = []
    for tenant in tenants:
        for host in tenant.nodes:
            for k in range(2):
                name = f"w{host[1:]}x{k}"
                index = len(workloads)
                workloads.append(
                    Workload(
                        name=name,
                        tenant=tenant.name,
                        node=host,
                        mac=tenancy.workload_mac(tenant.name, name),
                        ipv6=ipaddress.IPv6Interface(f"{tenant.ipv6_prefix[index + 10]}/64"),
                        owner=f"u{index % len(users)}" if users else None,
                        tags=["web"] if k == 0 else ["db"],
                    )
                )
    groups = [Group(name=f"g{g}", members=[]) for g in range(GROUPS)]
    return nodes, tenants, workloads, users, groups


def policy(rules: int, tenants: int) -> str:
    lines = ["version: 1", "groups:", "  ops: {nodes: [h0, h1, h2, h3]}", "rules:"]
    for r in range(rules):
        kind = r % 3
        if kind == 0:
            lines.append(
                f"  - {{name: r{r}, from: {{groups: [g{r % GROUPS}]}}, to: {{tenants: [t{r % tenants}]}}, "
                "ports: [tcp/22], when: [{attr: device.posture.healthy, op: eq, value: 'true'}]}"
            )
        elif kind == 1:
            source = f"{{tenants: [t{r % tenants}]}}"
            lines.append(f"  - {{name: r{r}, from: {source}, to: {{tags: [db]}}, ports: [tcp/5432]}}")
        else:
            lines.append(
                f"  - {{name: r{r}, from: {{groups: [ops]}}, to: {{nodes: [h{r}]}}, ports: [tcp/22]}}"
            )
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def posture_flap(d: Directory, index: int) -> list[Change]:
    """One host's condition-read posture attribute flips (what a posture report writes)."""
    host = d.nodes[f"h{(index * 37) % len(d.nodes)}"]
    value = "false" if host.attributes.get("posture.healthy") == "true" else "true"
    record = host.model_copy(update={"attributes": {**host.attributes, "posture.healthy": value}})
    return [
        Change(rev=d.revision + 1, kind="node", key=host.name, op="put", data=record.model_dump(mode="json"))
    ]


def step_figures(d: Directory, label: str, resolve: float, flaps: int = 20) -> dict[str, float]:
    """A controller process moving its directory by one posture flap and judging whom it
    concerns, against resolving the whole directory (what it did before)."""
    steps, audiences = [], []
    for index in range(flaps):
        changes = posture_flap(d, index)
        start = time.perf_counter()
        after = advanced(d, changes, lambda rev: None)
        audience = affected(d, after, changes)
        steps.append(time.perf_counter() - start)
        audiences.append(len(audience.nodes))
        d = after
    step = statistics.median(steps)
    return {
        f"{label}_flap_step_ms_p50": round(step * 1000, 2),
        f"{label}_flap_step_ms_max": round(max(steps) * 1000, 2),
        f"{label}_flap_hosts_woken_p50": statistics.median(audiences),
        f"{label}_ratio_step_to_whole_resolve": round(step / resolve, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    nodes, tenants, workloads, users, groups = directory(args.nodes)
    text = policy(args.rules, len(tenants))
    current = PolicyRevision(rev="00000001", text=text, digest="bench", created_by="bench")
    start = time.perf_counter()
    closed = directory_of(NETWORK, nodes, tenants, workloads, users, groups, current)
    resolve = time.perf_counter() - start
    opened = directory_of(NETWORK, nodes, tenants, workloads, users, groups, None)
    step = max(1, args.nodes // args.samples)
    hosts = [n.name for n in nodes[::step]][: args.samples]
    need = [timed(lambda h=h: node_map(closed, h)) for h in hosts]  # type: ignore[misc]
    base = [timed(lambda h=h: node_map(opened, h)) for h in hosts]  # type: ignore[misc]
    sizes = [len(node_map(closed, h).model_dump_json()) for h in hosts[:20]]
    open_sizes = [len(node_map(opened, h).model_dump_json()) for h in hosts[:20]]
    figures = {
        "nodes": args.nodes,
        "rules": args.rules,
        "machine": platform.platform(),
        "resolve_once_ms": round(resolve * 1000, 1),
        "need_to_know_map_ms_p50": round(statistics.median(need) * 1000, 2),
        "need_to_know_map_ms_max": round(max(need) * 1000, 2),
        "open_map_ms_p50": round(statistics.median(base) * 1000, 2),
        "ratio_need_to_open": round(statistics.median(need) / statistics.median(base), 2),
        "map_bytes_need_to_know_p50": int(statistics.median(sizes)),
        "map_bytes_open_p50": int(statistics.median(open_sizes)),
        **step_figures(closed, "policy", resolve),
        **step_figures(opened, "open", resolve),
    }
    for key, value in figures.items():
        print(f"{key:32} {value}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
