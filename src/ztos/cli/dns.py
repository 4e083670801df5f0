"""``ztos dns`` (admin: the zone, name lookups) and ``ztos service`` (on a host: its own services)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ztos.cli.context import fail, print_json, print_table, state
from ztos.discovery import DnsUpdater
from ztos.discovery.names import as_name
from ztos.discovery.updates import resolve
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import DnsZoneView

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
StateDir = Annotated[Path, typer.Option(help="This host's agent state directory.")]
DEFAULT_STATE = Path("/var/lib/ztos/agent")

dns_app = typer.Typer(help="The network's authoritative DNS zone.", no_args_is_help=True)
service_app = typer.Typer(
    help="Services this host offers, published as DNS-SD records.", no_args_is_help=True
)


def zone_view(ctx: typer.Context) -> DnsZoneView:
    return DnsZoneView.model_validate(state(ctx).client().request("GET", "/api/v1/dns/records"))


@dns_app.command("records")
def records(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every record of the zone, as the authoritative server serves it."""
    view = zone_view(ctx)
    if json_out:
        print_json(view)
        return
    print(f"zone {view.zone} on [{view.server}]:{view.port} ({view.backend})")
    rows = [line.split(None, 4) for line in view.records]
    print_table("records", ["name", "ttl", "class", "type", "data"], rows)


@dns_app.command("resolve")
def resolve_name(
    ctx: typer.Context,
    name: str,
    rdtype: Annotated[str, typer.Option("--type", help="Record type: AAAA, A, SRV, TXT, PTR, ...")] = "AAAA",
    server: Annotated[
        str | None, typer.Option(help="ADDRESS:PORT of the server (default: ask the controller).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Look a name up at the network's authoritative server (relative names are in the zone)."""
    if server is None:
        view = zone_view(ctx)
        address, port, zone = view.server, view.port, view.zone
    else:
        address, _, port_text = server.rpartition(":")
        address, port, zone = address.strip("[]"), int(port_text), None
    fqdn = as_name(name) if name.endswith(".") or zone is None else as_name(name, as_name(zone))
    answers = resolve(address, port, fqdn, rdtype.upper())
    if json_out:
        print_json({"name": fqdn.to_text(), "type": rdtype.upper(), "answers": answers})
    elif not answers:
        fail(f"{fqdn.to_text()} has no {rdtype.upper()} record")
    else:
        for answer in answers:
            print(answer)


def updater_for(state_dir: Path) -> tuple[DnsUpdater, str]:
    identity = IdentityDir(state_dir)
    credentials = identity.dns_credentials()
    if credentials is None:
        fail(f"no DNS key in {state_dir}: this host enrolled with a controller that serves no DNS")
    enrolment = identity.load_enrolment()
    host = enrolment.node.name if enrolment and enrolment.node else ""
    updater = DnsUpdater(
        credentials.server, credentials.port, credentials.zone, credentials.key_name, credentials.secret
    )
    return updater, host


@service_app.command("register")
def register(
    name: str,
    port: Annotated[int, typer.Option(help="Port the service listens on.")],
    proto: Annotated[str, typer.Option(help="tcp or udp.")] = "tcp",
    txt: Annotated[list[str] | None, typer.Option(help="TXT key=value (repeat).")] = None,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Publish _NAME._PROTO.<this host>.<zone> SRV (+TXT), signed with this host's key."""
    updater, host = updater_for(state_dir)
    updater.register_service(host, name, proto, port, txt=tuple(txt or ()))
    print(f"_{name}._{proto}.{host}.{updater.zone.to_text()} -> port {port}")


@service_app.command("unregister")
def unregister(
    name: str,
    proto: Annotated[str, typer.Option(help="tcp or udp.")] = "tcp",
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Withdraw a service this host published."""
    updater, host = updater_for(state_dir)
    updater.unregister_service(host, name, proto)
    print(f"_{name}._{proto}.{host} withdrawn")
