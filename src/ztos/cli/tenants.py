"""``ztos tenant``, ``ztos workload`` and ``ztos network``: segments and routing."""

from __future__ import annotations

from typing import Annotated

import typer

from ztos import naming
from ztos.cli.context import checked_name, print_json, print_table, state
from ztos.client import api_path
from ztos.controller.status import NetworkStatus
from ztos.errors import InvalidInput
from ztos.model import Network, Tenant, Workload

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
NodeOpt = Annotated[str, typer.Option("--node", help="Node (host) name.")]

tenant_app = typer.Typer(
    help="Tenants: isolated VXLAN segments with their own namespace.", no_args_is_help=True
)
workload_app = typer.Typer(help="Workloads attached to tenants.", no_args_is_help=True)
network_app = typer.Typer(help="Network-wide routing: BGP EVPN settings and status.", no_args_is_help=True)


@tenant_app.command("create")
def tenant_create(
    ctx: typer.Context,
    name: str,
    vni: Annotated[int | None, typer.Option(help="VXLAN VNI (allocated when omitted).")] = None,
    ipv4: Annotated[str | None, typer.Option(help="IPv4 subnet, e.g. 10.20.0.0/24 (may overlap).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a tenant (IPv6 /64 carved from the network prefix)."""
    checked_name(name, "tenant")
    body = (
        state(ctx).client().request("POST", "/api/v1/tenants", json={"name": name, "vni": vni, "ipv4": ipv4})
    )
    tenant = Tenant.model_validate(body)
    if json_out:
        print_json(tenant)
    else:
        print(
            f"tenant {tenant.name}: VNI {tenant.vni}, {tenant.ipv6_prefix}, {tenant.ipv4_prefix or 'no IPv4'}"
        )


def _attachment(ctx: typer.Context, name: str, node: str, verb: str) -> None:
    checked_name(name, "tenant")
    checked_name(node, "node")
    body = state(ctx).client().request("POST", api_path("tenants", name, verb), json={"node": node})
    tenant = Tenant.model_validate(body)
    print(f"tenant {tenant.name} now served by: {', '.join(tenant.nodes) or 'no node'}")


@tenant_app.command("attach")
def tenant_attach(ctx: typer.Context, name: str, node: NodeOpt) -> None:
    """Serve a tenant on a node."""
    _attachment(ctx, name, node, "attach")


@tenant_app.command("detach")
def tenant_detach(ctx: typer.Context, name: str, node: NodeOpt) -> None:
    """Stop serving a tenant on a node (removes its workloads there)."""
    _attachment(ctx, name, node, "detach")


@tenant_app.command("delete")
def tenant_delete(ctx: typer.Context, name: str) -> None:
    """Delete a tenant and its workloads everywhere."""
    checked_name(name, "tenant")
    state(ctx).client().request("DELETE", api_path("tenants", name))
    print(f"tenant {name} deleted")


@tenant_app.command("list")
def tenant_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List tenants."""
    tenants = [Tenant.model_validate(t) for t in state(ctx).client().request("GET", "/api/v1/tenants")]
    if json_out:
        print_json(tenants)
        return
    rows = [[t.name, t.vni, t.ipv6_prefix, t.ipv4_prefix, ", ".join(t.nodes)] for t in tenants]
    print_table("tenants", ["name", "VNI", "IPv6", "IPv4", "nodes"], rows)


@workload_app.command("add")
def workload_add(
    ctx: typer.Context,
    tenant: str,
    node: NodeOpt,
    name: Annotated[str, typer.Option("--name", help="Workload name.")],
    netns: Annotated[
        str | None,
        typer.Option(help="Existing network namespace to plug in (a container's); default: create one."),
    ] = None,
    owner: Annotated[
        str | None, typer.Option(help="User who runs it (policy groups apply through them).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag for policy selectors (repeat).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Attach a workload to a tenant on a node."""
    named = [(tenant, "tenant"), (node, "node"), (name, "workload"), (owner, "owner")]
    for value, what in [*named, *((t, "tag") for t in tag or [])]:
        if value is not None:
            checked_name(value, what)
    if netns is not None and not naming.is_netns(netns):
        raise InvalidInput(naming.netns_problem(netns))
    request = {
        "name": name,
        "tenant": tenant,
        "node": node,
        "netns": netns,
        "owner": owner,
        "tags": tag or [],
    }
    workload = Workload.model_validate(state(ctx).client().request("POST", "/api/v1/workloads", json=request))
    if json_out:
        print_json(workload)
    else:
        print(
            f"workload {workload.name} in {workload.tenant} on {workload.node}: "
            f"{workload.ipv6} {workload.ipv4 or ''} mac {workload.mac}"
        )


@workload_app.command("list")
def workload_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List workloads."""
    workloads = [Workload.model_validate(w) for w in state(ctx).client().request("GET", "/api/v1/workloads")]
    if json_out:
        print_json(workloads)
        return
    rows = [[w.name, w.tenant, w.node, w.ipv6, w.ipv4, w.mac] for w in workloads]
    print_table("workloads", ["name", "tenant", "node", "IPv6", "IPv4", "MAC"], rows)


@workload_app.command("remove")
def workload_remove(ctx: typer.Context, name: str) -> None:
    """Detach and remove a workload."""
    checked_name(name, "workload")
    state(ctx).client().request("DELETE", api_path("workloads", name))
    print(f"workload {name} removed")


@network_app.command("configure")
def network_configure(
    ctx: typer.Context,
    bgp: Annotated[
        bool | None,
        typer.Option(
            "--bgp/--no-bgp", help="BGP EVPN on, or the embedded flood-list mode (default: unchanged)."
        ),
    ] = None,
    asn: Annotated[int | None, typer.Option("--as", help="Local AS number of the mesh.")] = None,
    peer: Annotated[list[str] | None, typer.Option("--peer", help="Extra BGP peer address (repeat).")] = None,
    peer_as: Annotated[
        int | None, typer.Option("--peer-as", help="AS of the extra peers (default: local).")
    ] = None,
    evpn: Annotated[bool, typer.Option("--evpn/--no-evpn", help="Advertise VNIs with EVPN.")] = True,
    default_deny: Annotated[
        bool | None,
        typer.Option(
            "--default-deny/--no-default-deny",
            help="Before the first policy: closed (tenant peers only, nothing admitted) or open.",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Set BGP parameters, or default deny, for the whole network (what is not given stays)."""
    request: dict[str, object] = {"default_deny": default_deny}
    if bgp is not None:
        request |= {"bgp": bgp, "asn": asn, "evpn": evpn, "peers": peer or [], "peer_asn": peer_as}
    elif asn is not None or peer or peer_as is not None:
        raise InvalidInput("--as, --peer and --peer-as need --bgp")
    network = Network.model_validate(
        state(ctx).client().request("POST", "/api/v1/network/configure", json=request)
    )
    if json_out:
        print_json(network)
        return
    if default_deny is not None:
        print(f"default deny {'on' if network.default_deny else 'off'}: {_closed_text(network.default_deny)}")
    if bgp is None:
        return
    if network.bgp is None:
        print("BGP off: agents program VXLAN flood lists themselves (embedded mode)")
    else:
        print(
            f"BGP on: AS {network.bgp.asn}, EVPN {'on' if network.bgp.evpn else 'off'}, "
            f"{len(network.bgp.peers)} extra peer(s)"
        )


@network_app.command("status")
def network_status(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Per tenant: VNI, nodes, remote VTEPs, learned MACs; BGP sessions when on."""
    status = NetworkStatus.model_validate(state(ctx).client().request("GET", "/api/v1/network/status"))
    if json_out:
        print_json(status)
        return
    mode = (
        "embedded (flood lists)" if status.bgp is None else f"BGP AS {status.bgp.asn}, EVPN {status.bgp.evpn}"
    )
    print(f"mode: {mode}")
    if status.policy_rev is not None:
        print(f"policy: revision {status.policy_rev} in force (default deny: {_on(status.default_deny)})")
    else:
        closed = status.default_deny
        print(f"policy: none applied; default deny {_on(closed)}: {_closed_text(closed)}")
    rows = [
        [t.name, t.vni, n.node, ", ".join(n.remote_vteps), len(n.macs)]
        for t in status.tenants
        for n in t.nodes
    ]
    print_table("tenants", ["tenant", "VNI", "node", "remote VTEPs", "learned MACs"], rows)
    sessions = [[node, s.peer, s.state] for node, items in status.bgp_sessions.items() for s in items]
    if sessions:
        print_table("BGP sessions", ["node", "peer", "state"], sessions)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _closed_text(default_deny: bool) -> str:
    """What a network without a policy does, by its default-deny setting."""
    if default_deny:
        return "without a policy, hosts admit only ZTOS's own traffic and peer only within their tenants"
    return "without a policy the network is open: every host reaches every other"
