"""Admin verbs that talk to the controller API: tokens, nodes, security (logs: ``ztos.cli.monitoring``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ztos.cli.context import (
    checked_name,
    parse_attributes,
    parse_duration,
    print_json,
    print_table,
    state,
)
from ztos.client import api_path
from ztos.controller import SecurityOverview, TokenCreated
from ztos.enroll.profile import Profile, dump_profile
from ztos.enroll.server import TokenRequest
from ztos.model import Node, NodeView, Role, utcnow

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

token_app = typer.Typer(help="Bootstrap tokens for zero-touch enrolment.", no_args_is_help=True)
node_app = typer.Typer(help="Enrolled hosts.", no_args_is_help=True)
security_app = typer.Typer(help="Certificates, revocation and the CA.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Node name the token is bound to.")],
    role: Annotated[Role, typer.Option("--role", help="Role of the identity.")] = Role.NODE,
    ttl: Annotated[str, typer.Option("--ttl", help="Token lifetime: 15m, 1h, 7d.")] = "1h",
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Tenant (repeat).")] = None,
    attr: Annotated[list[str] | None, typer.Option("--attr", help="KEY=VALUE (repeat).")] = None,
    profile_out: Annotated[
        Path | None, typer.Option("--profile-out", help="Write the host profile YAML here.")
    ] = None,
    discover_by_dns: Annotated[
        bool, typer.Option("--discover-by-dns", help="Profile names the DNS domain, not controller URLs.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a single-use bootstrap token (its secret is shown once)."""
    request = TokenRequest(
        node_name=name,
        role=role,
        tenants=tenant or [],
        attributes=parse_attributes(attr or []),
        ttl_seconds=parse_duration(ttl),
        discover_by_dns=discover_by_dns,
    )
    body = state(ctx).client().request("POST", "/api/v1/tokens", json=request.model_dump(mode="json"))
    created = TokenCreated.model_validate(body)
    if profile_out is not None:
        write_profile(profile_out, created.profile)
    if json_out:
        print_json(created)
        return
    print(
        f"token {created.id} for {created.role.value} {created.node_name!r}, "
        f"expires {created.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    print(f"secret (shown once): {created.token}")
    if profile_out is not None:
        print(f"profile written to {profile_out}; on the host run: ztos enroll --profile {profile_out}")


def write_profile(path: Path, profile: Profile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(dump_profile(profile))


@node_app.command("list")
def node_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List enrolled nodes."""
    nodes = [NodeView.model_validate(n) for n in state(ctx).client().request("GET", "/api/v1/nodes")]
    if json_out:
        print_json(nodes)
        return
    now = utcnow()
    rows = [
        [
            n.name,
            n.status.value,
            n.overlay_ipv6,
            n.overlay_ipv4,
            ", ".join(n.endpoints),
            ", ".join(n.tenants),
            seen_ago(n.last_seen, now),
            n.cert_serial[:12],
        ]
        for n in nodes
    ]
    headers = ["name", "status", "overlay IPv6", "IPv4", "endpoints", "tenants", "last seen", "cert"]
    print_table("nodes", headers, rows)


def seen_ago(at: datetime | None, now: datetime) -> str:
    """``42s ago`` / ``5m ago`` / ``3h ago`` / ``2d ago``; ``never`` before the agent's first call."""
    if at is None:
        return "never"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@node_app.command("show")
def node_show(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """Show one node."""
    path = api_path("nodes", checked_name(name, "node"))
    node = NodeView.model_validate(state(ctx).client().request("GET", path))
    if json_out:
        print_json(node)
        return
    for key, value in node.model_dump(mode="json").items():
        print(f"{key:14} {value}")


@node_app.command("revoke")
def node_revoke(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "revoked by admin",
    json_out: JsonFlag = False,
) -> None:
    """Revoke a node: its certificates stop working and peers drop it."""
    path = api_path("nodes", checked_name(name, "node"), "revoke")
    body = state(ctx).client().request("POST", path, json={"reason": reason})
    if json_out:
        print_json(body)
    else:
        print(f"node {name!r} revoked")


@node_app.command("set-attr")
def node_set_attr(
    ctx: typer.Context,
    name: str,
    attribute: Annotated[list[str], typer.Argument(help="KEY=VALUE to set, KEY= to remove.")],
    json_out: JsonFlag = False,
) -> None:
    """Set node attributes (admin.* verdicts, location, risk score) used by policy conditions.

    posture.* is what the host reports about itself: set admin.X for your verdict."""
    path = api_path("nodes", checked_name(name, "node"), "attributes")
    changes = {key: (value or None) for key, value in parse_attributes(attribute).items()}
    body = state(ctx).client().request("PUT", path, json={"attributes": changes})
    node = Node.model_validate(body)
    if json_out:
        print_json(node)
    else:
        print(f"node {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(node.attributes.items())))


@node_app.command("delete")
def node_delete(ctx: typer.Context, name: str) -> None:
    """Revoke and forget a node."""
    path = api_path("nodes", checked_name(name, "node"))
    state(ctx).client().request("DELETE", path)
    print(f"node {name!r} deleted")


@security_app.command("status")
def security_status(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """CA, certificates and audit chain health."""
    status = SecurityOverview.model_validate(state(ctx).client().request("GET", "/api/v1/security/status"))
    if json_out:
        print_json(status)
        return
    print(f"network        {status.network}")
    print(f"CA fingerprint {status.ca_fingerprint}")
    print(f"CA valid until {status.ca_not_after:%Y-%m-%d}")
    print(f"nodes          {status.nodes_active} active, {status.nodes_revoked} revoked")
    print(f"audit chain    {'intact' if status.audit_chain_ok else 'BROKEN'} ({status.audit_events} events)")
    for alert in status.repeated_refusals:
        print(f"ALERT          {alert.identity} refused {alert.count} times recently: {alert.reason}")
    rows = [
        [
            c.subject,
            c.role.value,
            c.serial[:12],
            f"{c.not_after:%Y-%m-%d %H:%M}",
            "yes" if c.revoked else "no",
        ]
        for c in status.certificates
    ]
    print_table("certificates", ["subject", "role", "serial", "expires (UTC)", "revoked"], rows)
    hosts = [
        [
            h.name,
            h.status.value,
            "up" if h.up else "down",
            f"{h.wg_key_age_seconds / 86400:.1f} d",
            f"{h.last_handshake_age_seconds:.0f} s" if h.last_handshake_age_seconds is not None else None,
            f"{h.cert_not_after:%Y-%m-%d %H:%M}" if h.cert_not_after else None,
            h.macsec,
            ", ".join(f"{k}={v}" for k, v in sorted(h.posture.items())) or None,
        ]
        for h in status.hosts
    ]
    print_table(
        "hosts",
        ["host", "status", "state", "WG key age", "handshake", "cert expires", "MACsec", "posture"],
        hosts,
    )
