"""``ztos agent``: run the host agent (ztosd), print its plan, show its status."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ztos import dataplane, statedir
from ztos.agent.runner import DEFAULT_PORT, Agent, AgentConfig, cached_node_map
from ztos.cli.context import fail, print_json, print_table
from ztos.dataplane.state import short_key
from ztos.errors import ZtosError

agent_app = typer.Typer(help="The host agent (ztosd): enrol, watch, reconcile.", no_args_is_help=True)

StateDir = Annotated[Path, typer.Option(help="Where this host keeps its identity and state.")]
IfName = Annotated[str, typer.Option("--interface", help="WireGuard interface name (unique per machine).")]
NetnsPrefix = Annotated[str, typer.Option(help="Prefix of the tenant and workload namespaces ZTOS creates.")]
FrrInstanceOpt = Annotated[str, typer.Option(help="FRR instance name (unique per machine).")]
DEFAULT_STATE = Path("/var/lib/ztos/agent")


@agent_app.command("run")
def run(
    profile: Annotated[Path | None, typer.Option(help="Profile YAML (needed only on first start).")] = None,
    state_dir: StateDir = DEFAULT_STATE,
    interface: IfName = "ztos0",
    reconcile_interval: Annotated[float, typer.Option(help="Seconds between drift-repair passes.")] = 10.0,
    listen_port: Annotated[int, typer.Option(help="WireGuard UDP port.")] = DEFAULT_PORT,
    netns_prefix: NetnsPrefix = "ztos-",
    frr_instance: FrrInstanceOpt = "ztos",
    mdns: Annotated[
        bool, typer.Option("--mdns/--no-mdns", help="Announce and listen with mDNS on the underlay.")
    ] = True,
) -> None:
    """Enrol on first start (zero-touch), then keep the mesh reconciled."""
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # zeroconf logs a traceback for every multicast send a namespace cannot route; not actionable
    logging.getLogger("zeroconf").setLevel(logging.CRITICAL)
    statedir.secure_agent(state_dir)  # before anything is read from it or written to it
    config = AgentConfig(
        state_dir, profile, interface, reconcile_interval, listen_port, netns_prefix, frr_instance, mdns
    )
    agent = Agent(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    signal.signal(signal.SIGINT, lambda *_: agent.request_stop())
    agent.run()


def _config(
    state_dir: Path, interface: str, netns_prefix: str = "ztos-", frr_instance: str = "ztos"
) -> AgentConfig:
    return AgentConfig(
        state_dir=state_dir, ifname=interface, netns_prefix=netns_prefix, frr_instance=frr_instance
    )


@agent_app.command("plan")
def plan(
    state_dir: StateDir = DEFAULT_STATE,
    interface: IfName = "ztos0",
    netns_prefix: NetnsPrefix = "ztos-",
    frr_instance: FrrInstanceOpt = "ztos",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print what the next reconcile would change, area by area ("converged" where nothing
    would), without changing anything."""
    agent = Agent(_config(state_dir, interface, netns_prefix, frr_instance))
    try:
        node_map = agent.fetch_node_map(agent.client(agent.profile()))
    except ZtosError as exc:
        cached = cached_node_map(agent.config)
        if cached is None:
            fail(f"controller unavailable ({exc.detail}) and no cached node map in {state_dir}")
        node_map = cached
    outcomes = agent.plan(node_map)
    if json_out:
        print_json(
            [
                {"area": o.area, "state": o.state, "operations": list(o.operations), "detail": o.detail}
                for o in outcomes
            ]
        )
    else:
        for outcome in outcomes:
            for line in outcome.lines():
                print(line)


@agent_app.command("status")
def status(
    state_dir: StateDir = DEFAULT_STATE,
    interface: IfName = "ztos0",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Peers, handshake ages and bytes of this host's WireGuard interface."""
    observed = dataplane.observe(interface)
    node_map = cached_node_map(_config(state_dir, interface))
    names = {p.public_key: p.name for p in node_map.peers} if node_map else {}
    now = time.time()
    peers: list[dict[str, Any]] = [
        {
            "name": names.get(p.public_key, "?"),
            "public_key": p.public_key,
            "endpoint": p.endpoint,
            "handshake_age_s": round(now - p.last_handshake, 1) if p.last_handshake else None,
            "rx_bytes": p.rx_bytes,
            "tx_bytes": p.tx_bytes,
        }
        for p in observed.peers
    ]
    summary = {
        "interface": interface,
        "exists": observed.exists,
        "backend": observed.backend.value,
        "mtu": observed.mtu,
        "node": node_map.name if node_map else None,
        "peers": peers,
    }
    if json_out:
        print_json(summary)
        return
    print(f"{interface}: {'up' if observed.up else 'down'} ({observed.backend.value}), mtu {observed.mtu}")
    rows = [
        [
            p["name"],
            short_key(p["public_key"]),
            p["endpoint"],
            p["handshake_age_s"],
            p["rx_bytes"],
            p["tx_bytes"],
        ]
        for p in peers
    ]
    print_table("peers", ["name", "key", "endpoint", "handshake age (s)", "rx bytes", "tx bytes"], rows)
