"""Benchmark: policy compilation, nftables apply, and per-packet cost of identity sets.

Every figure is printed next to a baseline measured in the same run:

1. **Compile** a synthetic policy of ``--rules`` rules (default 10,000; each
   "group A -> group B on one TCP port") over ``--identities`` workloads
   (default 5,000, owners spread over 500 groups) into one tenant's bridge
   table, against the same for 10 rules over 10 identities. Validation of the
   document (pydantic) and of the YAML text (with line mapping) are timed too.
2. **Apply** the big ruleset with ``nft -j -f`` into a fresh namespace
   (with and without the ``nft -c`` pre-check), against the small one; then
   the membership change the design is for (one user moves group), applied
   as set-element commands (``diff_sets`` + ``update_sets``) against a full
   swap of the same big table; and the idempotent re-apply (list + compare).
3. **Per-packet cost**: iperf3 between two namespaces through a bridge
   filtered by a compiled tenant table whose source set holds 10 or 10,000
   identities (odd addresses, so nothing collapses), against the same bridge
   with no table. TCP (one stream, Gbit/s) and UDP with 64-byte datagrams
   (received packets/s, the per-packet figure); alternated rounds, medians,
   and the median of per-round 10k/10 pairs (less exposed to load drifting
   on a shared machine). Target: 10k/10 indistinguishable from 1 (set lookups
   are trees, not rule lists).

Namespaces are named ``ztpb<4 hex>-…`` and removed at the end, even on
failure. Usage (root): ``.venv/bin/python bench/policy.py [--quick] [--json-out FILE]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import yaml

from ztos.dataplane import links, nftables
from ztos.policy import (
    Policy,
    Snapshot,
    TenantPorts,
    UserInfo,
    WorkloadInfo,
    compile_tenant,
    diff_sets,
    load_policy,
)

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
TENANT = "bench"
GROUPS = 500
IPERF_PORT = 5201


def log(text: str) -> None:
    print(text, flush=True)


def timed(action: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median wall time in seconds over ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


# --- synthetic policies ---------------------------------------------------------------------------


def odd_v4(index: int, base: str = "10.64.0.0") -> str:
    return str(ipaddress.IPv4Address(base) + 2 * index + 1)


def odd_v6(index: int, base: str = "fd00:b::") -> str:
    return str(ipaddress.IPv6Address(base) + 2 * index + 1)


def synthetic(rules: int, identities: int) -> tuple[dict[str, Any], Snapshot, TenantPorts]:
    groups = min(GROUPS, identities)
    members = {k: [f"u{i}" for i in range(k, identities, groups)] for k in range(groups)}
    document = {
        "groups": {f"g{k}": {"users": users} for k, users in members.items()},
        "rules": [
            {"name": f"r{n}", "from": {"groups": [f"g{n % groups}"]},
             "to": {"groups": [f"g{(n * 7 + 1) % groups}"]}, "ports": [f"tcp/{1000 + n % 5000}"]}
            for n in range(rules)
        ],
    }  # fmt: skip
    snapshot = Snapshot.build(
        users=[UserInfo(f"u{i}") for i in range(identities)],
        workloads=[
            WorkloadInfo(f"w{i}", TENANT, f"n{i % 4}", (odd_v4(i), odd_v6(i)), owner=f"u{i}")
            for i in range(identities)
        ],
    )
    local = {f"w{i}": f"zt-w{i}" for i in range(0, min(identities, 80), 4)}
    return document, snapshot, TenantPorts("zt-v1", "zt-g1", local)


def compile_figures(rules: int, identities: int) -> dict[str, Any]:
    document, snapshot, ports = synthetic(rules, identities)
    repeat = 5 if rules <= 100 else 1
    validate_s, policy = timed(lambda: Policy.model_validate(document), repeat)
    text = yaml.safe_dump(document, sort_keys=False)
    yaml_s, _ = timed(lambda: load_policy(text, "bench.yaml"), repeat)
    compile_s, ruleset = timed(
        lambda: compile_tenant(policy, snapshot, "n0", TENANT, ports, now=NOW, conntrack=False), repeat
    )
    objects = ruleset["nftables"]
    return {
        "rules": rules,
        "identities": identities,
        "validate_s": validate_s,
        "yaml_load_s": yaml_s,
        "compile_s": compile_s,
        "nft_rules": sum("rule" in o for o in objects),
        "sets": sum("set" in o for o in objects),
        "elements": sum(len(o["set"].get("elem", [])) for o in objects if "set" in o),
        "json_bytes": len(json.dumps(ruleset)),
        "_ruleset": ruleset,
        "_policy": policy,
        "_snapshot": snapshot,
        "_ports": ports,
    }


# --- namespaces -----------------------------------------------------------------------------------


@contextmanager
def namespaces(prefix: str) -> Iterator[None]:
    try:
        yield
    finally:
        for name in links.list_netns():
            if name.startswith(prefix):
                links.delete_netns(name)


def apply_figures(prefix: str, small: dict[str, Any], big: dict[str, Any]) -> dict[str, Any]:
    netns = f"{prefix}-nft"
    links.create_netns(netns)
    table = f"ztos-t-{TENANT}"

    def fresh(ruleset: dict[str, Any], check: bool = True) -> float:
        nftables.flush_table("bridge", table, netns)
        started = time.perf_counter()
        nftables.apply(ruleset, netns, check=check)
        return time.perf_counter() - started

    small_s = statistics.median(fresh(small["_ruleset"]) for _ in range(5))
    big_checked_s, big_unchecked_s = fresh(big["_ruleset"]), fresh(big["_ruleset"], check=False)
    swap_s, _ = timed(lambda: nftables.apply(big["_ruleset"], netns, force=True, check=False))
    same_s, same = timed(lambda: nftables.apply(big["_ruleset"], netns))
    assert [r.action for r in same] == ["unchanged"], same
    moved = membership_change(big)
    diff_s, commands = timed(lambda: diff_sets(big["_ruleset"], moved))
    assert commands, "moving a user must change set elements"
    update_s, _ = timed(lambda: nftables.update_sets(commands, netns))
    again = nftables.apply(moved, netns)
    assert [r.action for r in again] == ["unchanged"], f"sets converged after update_sets: {again}"
    return {
        "small_apply_s": small_s,
        "big_apply_checked_s": big_checked_s,
        "big_apply_unchecked_s": big_unchecked_s,
        "big_swap_unchecked_s": swap_s,
        "big_reapply_unchanged_s": same_s,
        "membership_diff_s": diff_s,
        "membership_update_s": update_s,
        "membership_commands": len(commands),
    }


def membership_change(big: dict[str, Any]) -> dict[str, Any]:
    """User u0 leaves group g0 for g1: one identity's addresses move between sets."""
    policy: Policy = big["_policy"]
    groups = dict(policy.groups)
    groups["g0"] = groups["g0"].model_copy(update={"users": groups["g0"].users[1:]})
    groups["g1"] = groups["g1"].model_copy(update={"users": (*groups["g1"].users, "u0")})
    changed = policy.model_copy(update={"groups": groups})
    return compile_tenant(changed, big["_snapshot"], "n0", TENANT, big["_ports"], now=NOW, conntrack=False)


# --- per-packet cost ------------------------------------------------------------------------------


def packet_policy(identities: int) -> tuple[Policy, Snapshot]:
    fillers = identities - 1
    policy = Policy.model_validate({
        "groups": {"clients": {"users": ["uc", *(f"f{i}" for i in range(fillers))]}},
        "rules": [{"name": "iperf", "from": {"groups": ["clients"]}, "to": {"workloads": ["server"]},
                   "ports": [f"tcp/{IPERF_PORT}", f"udp/{IPERF_PORT}"]}],
    })  # fmt: skip
    snapshot = Snapshot.build(
        users=[UserInfo("uc"), *(UserInfo(f"f{i}") for i in range(fillers))],
        workloads=[
            WorkloadInfo("client", TENANT, "n0", ("10.50.0.1",), owner="uc"),
            WorkloadInfo("server", TENANT, "n0", ("10.50.0.3",)),
            *(
                WorkloadInfo(f"f{i}", TENANT, "n1", (odd_v4(i, "10.52.0.0"),), owner=f"f{i}")
                for i in range(fillers)
            ),
        ],
    )
    return policy, snapshot


def build_bridge(prefix: str) -> tuple[str, str, str]:
    client, server, bridge = f"{prefix}-c", f"{prefix}-s", f"{prefix}-br"
    for name in (client, server, bridge):
        links.create_netns(name)
        links.set_link("lo", name, up=True)
    links.create_bridge("zt-bb", bridge)
    for ns, port, address in ((client, "zt-wc", "10.50.0.1/24"), (server, "zt-ws", "10.50.0.3/24")):
        links.create_veth("eth0", port, netns=ns, peer_netns=bridge)
        links.set_master(port, "zt-bb", bridge)
        links.set_link(port, bridge, up=True)
        links.set_link("eth0", ns, up=True)
        links.add_address("eth0", address, ns)
    return client, server, bridge


def iperf(client: str, server: str, udp: bool, seconds: float) -> float:
    """Gbit/s for TCP; received packets/s for UDP (64-byte datagrams)."""
    serving = subprocess.Popen(
        ["ip", "netns", "exec", server, "iperf3", "-s", "-1", "--forceflush", "-p", str(IPERF_PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_listening(serving)
        flags = ["-u", "-b", "0", "-l", "64"] if udp else []
        argv = ["iperf3", "-c", "10.50.0.3", "-p", str(IPERF_PORT), "-t", str(seconds), "-J", *flags]
        done = subprocess.run(
            ["ip", "netns", "exec", client, *argv], capture_output=True, text=True, timeout=60
        )
        report = json.loads(done.stdout)["end"]
    finally:
        serving.kill()
        serving.wait(timeout=10)
    if udp:
        total = report["sum"]
        return float((total["packets"] - total["lost_packets"]) / total["seconds"])
    return float(report["sum_received"]["bits_per_second"] / 1e9)


def wait_listening(serving: subprocess.Popen[str]) -> None:
    """iperf3 says "Server listening" once it can accept (--forceflush: not stuck in a pipe buffer)."""
    assert serving.stdout is not None
    for line in serving.stdout:
        if "listening" in line:
            return
    raise RuntimeError("iperf3 server exited before listening")


def packet_figures(prefix: str, rounds: int, seconds: float) -> dict[str, Any]:
    client, server, bridge = build_bridge(prefix)
    conntrack = nftables.bridge_conntrack(bridge)
    ports = TenantPorts("zt-v1", "zt-g1", {"client": "zt-wc", "server": "zt-ws"})
    tables = {}
    for size in (10, 10_000):
        policy, snapshot = packet_policy(size)
        tables[size] = compile_tenant(policy, snapshot, "n0", TENANT, ports, now=NOW, conntrack=conntrack)
    samples: dict[str, dict[str, list[float]]] = {"none": {}, "10": {}, "10000": {}}
    for _ in range(rounds):
        for variant in ("none", "10", "10000"):
            if variant == "none":
                nftables.flush_table("bridge", f"ztos-t-{TENANT}", bridge)
            else:
                nftables.apply(tables[int(variant)], bridge, force=True)
            for kind, udp in (("tcp_gbps", False), ("udp_pps", True)):
                samples[variant].setdefault(kind, []).append(iperf(client, server, udp, seconds))
    elements = sum(len(o["set"].get("elem", [])) for o in tables[10_000]["nftables"] if "set" in o)
    paired = {
        kind: statistics.median(
            b / a for b, a in zip(samples["10000"][kind], samples["10"][kind], strict=True)
        )
        for kind in ("tcp_gbps", "udp_pps")
    }
    return {
        "conntrack": conntrack,
        "src_set_elements_10k": elements,
        **{f"{v}_{k}": statistics.median(xs) for v, by in samples.items() for k, xs in by.items()},
        **{f"paired_10k_over_10_{kind}": value for kind, value in paired.items()},
        "samples": samples,
    }


# --- report ---------------------------------------------------------------------------------------


def ratio(value: float, base: float) -> str:
    return f"{value / base:8.2f}x" if base else "   n/a"


def report(
    small: dict[str, Any], big: dict[str, Any], applied: dict[str, Any], packets: dict[str, Any]
) -> None:
    log("\n== compile (one tenant bridge table) ==")
    for label, key in (
        ("validate (pydantic)", "validate_s"),
        ("load YAML + lines", "yaml_load_s"),
        ("compile", "compile_s"),
    ):
        sizes = f"{small['rules']:>6} rules/{small['identities']:>5} ids"
        log(f"{label:22} {sizes}: {small[key] * 1e3:9.1f} ms (baseline)")
        log(f"{'':22} {big['rules']:>6} rules/{big['identities']:>5} ids: {big[key] * 1e3:9.1f} ms "
            f"= {ratio(big[key], small[key])}, {big[key] / big['rules'] * 1e6:.0f} us/rule")  # fmt: skip
    log(f"big ruleset: {big['nft_rules']} nft rules, {big['sets']} sets, {big['elements']} elements, "
        f"{big['json_bytes'] / 1e6:.1f} MB JSON")  # fmt: skip
    log("\n== apply (nft -j -f, fresh namespace) ==")
    base = applied["small_apply_s"]
    log(f"small ruleset, checked + applied     {base * 1e3:9.1f} ms (baseline)")
    for label, key in (
        ("big ruleset, nft -c then apply", "big_apply_checked_s"),
        ("big ruleset, apply only", "big_apply_unchecked_s"),
        ("big ruleset swapped for itself", "big_swap_unchecked_s"),
        ("big ruleset re-applied (unchanged)", "big_reapply_unchanged_s"),
        ("membership change: diff_sets", "membership_diff_s"),
        ("membership change: update_sets", "membership_update_s"),
    ):
        log(f"{label:36} {applied[key] * 1e3:9.1f} ms = {ratio(applied[key], base)}")
    swap = applied["big_swap_unchecked_s"]
    log(f"membership update vs full swap of the big table: {ratio(applied['membership_update_s'], swap)} "
        f"({applied['membership_commands']} element commands)")  # fmt: skip
    log(f"\n== per-packet cost through a filtered bridge (conntrack: {packets['conntrack']}) ==")
    for kind, unit in (("tcp_gbps", "Gbit/s"), ("udp_pps", "pkt/s")):
        none, ten, big_set = packets[f"none_{kind}"], packets[f"10_{kind}"], packets[f"10000_{kind}"]
        log(f"{kind:9} no table {none:12.2f} {unit} (baseline) | 10 ids {ten:12.2f} = {ratio(ten, none)} | "
            f"10k ids {big_set:12.2f} = {ratio(big_set, none)}")  # fmt: skip
        paired = packets[f"paired_10k_over_10_{kind}"]
        log(f"{'':9} 10k ids / 10 ids: medians {ratio(big_set, ten)}, per-round pairs {ratio(paired, 1)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--identities", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="1,000 rules, 1 round of 1 s")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    if args.quick:
        args.rules, args.rounds, args.seconds = 1_000, 1, 1.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on `kill` too
    prefix = f"ztpb{secrets.token_hex(2)}"
    python = sys.version.split()[0]
    log(f"machine: {platform.node()} {platform.machine()}, kernel {platform.release()}, python {python}")
    small, big = compile_figures(10, 10), compile_figures(args.rules, args.identities)
    with namespaces(prefix):
        applied = apply_figures(prefix, small, big)
        packets = packet_figures(prefix, args.rounds, args.seconds)
    report(small, big, applied, packets)
    if args.json_out:
        figures = {"compile_small": small, "compile_big": big, "apply": applied, "packets": packets}
        clean = {k: {n: v for n, v in d.items() if not n.startswith("_")} for k, d in figures.items()}
        with open(args.json_out, "w") as out:
            json.dump({"args": vars(args), **clean}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
