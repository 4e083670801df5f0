"""Figures from a run: per-kind change statistics, ratios to the baseline, the table."""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

from bench.sim.stats import percentile, ratio


def per_kind(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Write -> last agent p50/p99 and the means of what each change cost, by kind."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        kinds.setdefault(result["kind"], []).append(result)
    out = {}
    for kind, rows in kinds.items():
        settled = [
            r["to_last_agent_ms"] for r in rows if not r["timed_out"] and r["to_last_agent_ms"] is not None
        ]
        affected = statistics.mean(r["affected"] for r in rows)
        bytes_mean = statistics.mean(r["bytes"] for r in rows)
        out[kind] = {
            "samples": len(rows),
            "timed_out": sum(r["timed_out"] for r in rows),
            "missed_agents": sum(r["missed"] for r in rows),
            "to_last_agent_p50_ms": round(percentile(settled, 50), 1) if settled else None,
            "to_last_agent_p99_ms": round(percentile(settled, 99), 1) if settled else None,
            "write_p50_ms": round(percentile([r["write_ms"] for r in rows if r["write_ms"]], 50), 1),
            "affected_mean": round(affected, 1),
            "woken_mean": round(statistics.mean(r["woken"] for r in rows), 1),
            "bytes_per_change_mean": round(bytes_mean),
            "bytes_per_affected_agent": round(bytes_mean / affected) if affected else None,
            "controller_cpu_s_per_change": round(statistics.mean(r["controller_cpu_s"] for r in rows), 3),
        }
    return out


def with_ratios(at_n: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]]) -> None:
    for kind, row in at_n.items():
        ref = base.get(kind, {})
        for field in ("to_last_agent_p50_ms", "to_last_agent_p99_ms", "bytes_per_change_mean"):
            value, baseline = row.get(field), ref.get(field)
            row[f"{field}_vs_baseline"] = ratio(value, baseline) if value and baseline else None


def summarise(
    args: argparse.Namespace, figures: dict[str, Any], machine: dict[str, Any], date: str
) -> dict[str, Any]:
    params = {k: (str(v) if not isinstance(v, int | float | list) else v) for k, v in vars(args).items()}
    out: dict[str, Any] = {"benchmark": "sim", "date": date, "machine": machine, "params": params, **figures}
    enrol = figures.get("enrolment")
    if enrol:
        first, last = enrol["enroll_first_n"].get("p50_ms"), enrol["enroll_last_n"].get("p50_ms")
        enrol["last_vs_first_p50"] = ratio(last, first) if first and last else None
    if "changes" in figures:
        base = per_kind(figures.get("baseline_changes", []))
        at_n = per_kind(figures["changes"])
        with_ratios(at_n, base)
        out["baseline_by_kind"], out["by_kind"] = base, at_n
    fetch = figures.get("map_fetch")
    if fetch:
        fetch["netmap_vs_healthz_p50"] = ratio(
            fetch["netmap_request"].get("p50_ms", math.nan), fetch["healthz_request"].get("p50_ms", math.nan)
        )
    return out


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if abs(value) >= 10 else f"{value:.2f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def print_table(results: dict[str, Any]) -> None:
    p, layout = results["params"], results["layout"]
    print()
    print(
        f"ZTOS simulator: {p['agents']} agents, cells of {layout['cell_size']} ({layout['cells']} rules), "
        f"reconcile interval {p['reconcile_interval']} s, {results['machine']['cpus']} CPUs, "
        f"{results['date']}"
    )
    for line in summary_lines(results):
        print(line)
    if "by_kind" in results:
        print_changes(results["baseline_by_kind"], results["by_kind"])
    if "failed" in results:
        print(f"measurement failed: {results['failed']}")
    errors = {k: v["errors"] for k, v in results.get("traffic", {}).items() if v["errors"]}
    if errors:
        print(f"request errors by endpoint: {errors}")


def summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    enrol = results.get("enrolment")
    if enrol:
        n, first, last = enrol["first_n"], enrol["enroll_first_n"], enrol["enroll_last_n"]
        lines.append(
            f"enrolment: {fmt(enrol['hosts_per_s'])} hosts/s ({enrol['hosts']} in {enrol['wall_s']} s, "
            f"controller CPU {enrol['controller_cpu_s']} s); "
            f"POST /enroll p50 {enrol['enroll_request'].get('p50_ms')} ms; first {n} p50 "
            f"{first.get('p50_ms')} ms, last {n} p50 {last.get('p50_ms')} ms "
            f"(last/first {fmt(enrol.get('last_vs_first_p50'))}x)"
        )
    if "start" in results and "idle" in results:
        s, idle = results["start"], results["idle"]
        lines.append(
            f"start: quiet after {s['seconds']} s ({s['woken']} woken, controller CPU {s['cpu_s']} s"
            f"{', TIMED OUT' if s['timed_out'] else ''}); idle: controller "
            f"{idle['cpu_share_of_one_core']:.1%} of a core, {idle['requests_per_s']} requests/s"
        )
    fetch = results.get("map_fetch")
    if fetch:
        lines.append(
            f"map fetch (quiet, sequential): p50 {fetch['netmap_request'].get('p50_ms')} ms vs healthz "
            f"{fetch['healthz_request'].get('p50_ms')} ms ({fmt(fetch.get('netmap_vs_healthz_p50'))}x); "
            f"map {fmt(fetch['map_bytes_p50'])} bytes p50"
        )
    build = results.get("map_build")
    if build:
        lines.append(
            f"map build in-process: first {build['first_build_ms']} ms (resolves the policy), then "
            f"{build['per_host_ms_p50']} ms per host p50, {build['per_host_ms_p99']} ms p99"
        )
    end = results.get("controller_end")
    if end:
        lines.append(
            f"controller at the end: CPU {end['cpu_s']:.1f} s, RSS {end['rss_mib']:.0f} MiB "
            f"(peak {end['peak_rss_mib']:.0f} MiB)"
        )
    return lines


def print_changes(base: dict[str, dict[str, Any]], at_n: dict[str, dict[str, Any]]) -> None:
    header = (
        "change",
        "base p50",
        "N p50",
        "N p99",
        "ratio p50",
        "affected",
        "woken",
        "bytes/change",
        "bytes/affected",
        "ctl CPU s",
        "timeouts",
    )
    rows = [header]
    for kind, row in at_n.items():
        b = base.get(kind, {})
        rows.append(
            (
                kind,
                fmt(b.get("to_last_agent_p50_ms"), " ms"),
                fmt(row["to_last_agent_p50_ms"], " ms"),
                fmt(row["to_last_agent_p99_ms"], " ms"),
                fmt(row.get("to_last_agent_p50_ms_vs_baseline"), "x"),
                fmt(row["affected_mean"]),
                fmt(row["woken_mean"]),
                fmt(row["bytes_per_change_mean"]),
                fmt(row["bytes_per_affected_agent"]),
                fmt(row["controller_cpu_s_per_change"]),
                f"{row['timed_out']}/{row['samples']}",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    print()
    print("write -> last affected agent holding the new map (baseline: 2 agents, same run):")
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
