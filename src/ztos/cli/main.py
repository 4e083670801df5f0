"""Entry point of the ``ztos`` command (and ``ztosd``)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from typer._click.core import Command, Context  # the click Typer vendors and types its groups with

from ztos import statedir
from ztos.cli.context import CliState, fail, parse_duration, print_json, state, ztos_home
from ztos.enroll.profile import format_validation_error, load_profile
from ztos.errors import ZtosError

DEFAULT_DB = Path("/var/lib/ztos/controller/directory.db")
DEFAULT_AGENT_STATE = Path("/var/lib/ztos/agent")


def _token() -> typer.Typer:
    from ztos.cli import admin, people  # people adds 'token list' and 'token revoke'

    assert people.user_app is not None
    return admin.token_app


def _security() -> typer.Typer:
    from ztos.cli import admin, monitoring

    if not any(c.name == "login-link" for c in admin.security_app.registered_commands):
        admin.security_app.command("login-link")(monitoring.login_link)
    return admin.security_app


def _attr(module: str, name: str) -> Callable[[], typer.Typer]:
    def load() -> typer.Typer:
        app: typer.Typer = getattr(importlib.import_module(module), name)
        return app

    return load


# Each command group is imported only when invoked: the agent's group pulls in
# the data plane (pyroute2), monitoring Prometheus, dns dnspython, and an admin
# command should not pay for them on every call (scripts call the CLI a lot).
GROUPS: dict[str, Callable[[], typer.Typer]] = {
    "token": _token,
    "node": _attr("ztos.cli.admin", "node_app"),
    "user": _attr("ztos.cli.people", "user_app"),
    "security": _security,
    "monitoring": _attr("ztos.cli.monitoring", "monitoring_app"),
    "agent": _attr("ztos.cli.agent", "agent_app"),
    "lab": _attr("ztos.cli.lab", "lab_app"),
    "tenant": _attr("ztos.cli.tenants", "tenant_app"),
    "workload": _attr("ztos.cli.tenants", "workload_app"),
    "network": _attr("ztos.cli.tenants", "network_app"),
    "dns": _attr("ztos.cli.dns", "dns_app"),
    "policy": _attr("ztos.cli.policy", "policy_app"),
    "service": _attr("ztos.cli.dns", "service_app"),
}


class LazyGroups(typer.core.TyperGroup):
    """The root group: ``GROUPS`` are listed always and built on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *GROUPS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in GROUPS:
            return super().get_command(ctx, cmd_name)
        command = typer.main.get_command(GROUPS[cmd_name]())
        command.name = cmd_name
        return command


app = typer.Typer(
    name="ztos",
    cls=LazyGroups,
    help="ZTOS: zero trust overlay network. Enrol hosts, manage identities, run the controller.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
controller_app = typer.Typer(help="Run the controller.", no_args_is_help=True)
app.add_typer(controller_app, name="controller")


@app.callback()
def root(
    ctx: typer.Context,
    controller: Annotated[
        str | None,
        typer.Option("--controller", envvar="ZTOS_CONTROLLER", help="Controller URL (overrides config)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = CliState(controller=controller)


def pki_dir_for(db: Path, pki_dir: Path | None) -> Path:
    return pki_dir or db.parent / "pki"


@app.command("init")
def init(
    ctx: typer.Context,
    db: Annotated[Path, typer.Option(help="Directory database file to create.")] = DEFAULT_DB,
    pki_dir: Annotated[Path | None, typer.Option(help="Where the CA lives (default: beside --db).")] = None,
    network: Annotated[str, typer.Option(help="Network name.")] = "default",
    controller_url: Annotated[
        list[str] | None,
        typer.Option("--controller-url", help="URL hosts use to reach the controller (repeat)."),
    ] = None,
    cert_ttl: Annotated[str, typer.Option(help="Lifetime of node certificates.")] = "24h",
    admin_cert_ttl: Annotated[
        str, typer.Option(help="Lifetime of the first admin's certificate (the CLI renews it).")
    ] = "7d",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a network: CA, overlay prefixes, first admin identity in $ZTOS_HOME."""
    from ztos.controller import initialise_network
    from ztos.directory import open_store
    from ztos.enroll.identity_dir import IdentityDir

    home = state(ctx).home
    statedir.secure_controller(db, pki_dir_for(db, pki_dir))
    store = open_store(str(db))
    try:
        net = initialise_network(
            store,
            pki_dir_for(db, pki_dir),
            IdentityDir(home),
            network,
            parse_duration(cert_ttl),
            admin_cert_ttl_seconds=parse_duration(admin_cert_ttl),
        )
    finally:
        store.close()
    urls = controller_url or ["https://localhost:8443"]
    (home / "config.yaml").write_text("controllers:\n" + "".join(f"  - {u}\n" for u in urls))
    summary = {
        "network": net.name,
        "ula_prefix": str(net.ula_prefix),
        "ipv4_prefix": str(net.ipv4_prefix),
        "db": str(db),
        "admin_home": str(home),
        "controllers": urls,
    }
    if json_out:
        print_json(summary)
        return
    print(f"network {net.name!r} created: overlay {net.ula_prefix}, IPv4 {net.ipv4_prefix}")
    print(f"admin identity written to {home}; start the controller with:")
    print(f"  ztos controller serve --db {db} --listen [::]:8443")


@controller_app.command("serve")
def controller_serve(
    db: Annotated[Path, typer.Option(help="Directory database file.")] = DEFAULT_DB,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "[::]:8443",
    pki_dir: Annotated[Path | None, typer.Option(help="Where the CA lives (default: beside --db).")] = None,
    san: Annotated[list[str] | None, typer.Option("--san", help="Extra TLS name/address (repeat).")] = None,
    url: Annotated[
        list[str] | None, typer.Option("--url", help="URL written into profiles (repeat).")
    ] = None,
    dns_listen: Annotated[
        str | None, typer.Option(help="Serve the network's DNS zone on ADDRESS:PORT (e.g. [2001:db8::1]:53).")
    ] = None,
    dns_backend: Annotated[str, typer.Option(help="'embedded' (default) or 'bind' (BIND 9).")] = "embedded",
    dns_advertise: Annotated[
        str | None, typer.Option(help="DNS server address told to hosts (default: the --dns-listen address).")
    ] = None,
    dns64: Annotated[
        str | None,
        typer.Option(help="Embedded DNS only: synthesise AAAA in this NAT64 prefix (e.g. 64:ff9b::/96)."),
    ] = None,
    posture_timeout: Annotated[
        float, typer.Option(help="Seconds without a posture report before a host is non-compliant.")
    ] = 30.0,
    metrics_public: Annotated[
        bool,
        typer.Option(envvar="ZTOS_METRICS_PUBLIC", help="Serve /metrics without authentication."),
    ] = False,
    session_ttl: Annotated[
        str, typer.Option(envvar="ZTOS_SESSION_TTL", help="Lifetime of browser bearer tokens.")
    ] = "15m",
) -> None:
    """Serve the controller API over mutually authenticated TLS (and the network's DNS)."""
    # The API reads its settings from the environment (ztos.api.auth.ApiSettings).
    os.environ["ZTOS_SESSION_TTL"] = str(parse_duration(session_ttl))
    os.environ["ZTOS_METRICS_PUBLIC"] = "1" if metrics_public else ""
    from ztos.api.server import parse_listen, serve
    from ztos.controller import Controller
    from ztos.controller.dns import DnsService, DnsSettings
    from ztos.controller.posture import PostureWatchdog
    from ztos.directory import open_store

    if not db.exists():
        fail(f"no directory at {db}: run 'ztos init --db {db}' first")
    if not posture_timeout > 0:
        fail(f"--posture-timeout must be more than 0 seconds, not {posture_timeout:g}")
    statedir.secure_controller(db, pki_dir_for(db, pki_dir))
    host, port = parse_listen(listen)
    names = list(san or [])
    if host not in ("::", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        names.append(host)
    urls = url or [f"https://{_url_host(n)}:{port}" for n in (names or ["localhost"])]
    controller = Controller.open(open_store(str(db)), pki_dir_for(db, pki_dir), urls)
    network = controller.network()
    if dns_listen is not None:
        settings = DnsSettings.parse(dns_listen, dns_backend, db.parent / "dns", dns_advertise, dns64)
        controller.dns = DnsService(controller.store, settings, urls)
        controller.dns.start(network)
    controller.posture_timeout = posture_timeout
    watchdog = PostureWatchdog(controller)
    watchdog.start()
    try:
        stopped = serve(controller, pki_dir_for(db, pki_dir), listen, names)
    finally:
        watchdog.stop.set()
        if isinstance(controller.dns, DnsService):
            controller.dns.stop()
    print(stopped, file=sys.stderr)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@app.command("enroll")
def enroll(
    profile: Annotated[Path, typer.Option(help="Profile YAML handed to this host.")],
    state_dir: Annotated[
        Path, typer.Option(help="Where this host keeps its identity.")
    ] = DEFAULT_AGENT_STATE,
    endpoint: Annotated[list[str] | None, typer.Option(help="Underlay endpoint ADDR:PORT (repeat).")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Enrol this host with a profile (zero-touch; safe to re-run)."""
    from ztos.client import enroll_host
    from ztos.enroll.identity_dir import IdentityDir

    statedir.secure_agent(state_dir)
    outcome = enroll_host(load_profile(profile), IdentityDir(state_dir), endpoint or [])
    if json_out:
        node = outcome.response.node if outcome.response else None
        print_json(
            {
                "already_enrolled": outcome.already_enrolled,
                "name": outcome.identity_name,
                "node": node.model_dump(mode="json") if node else None,
            }
        )
    elif outcome.already_enrolled:
        print(f"already enrolled as {outcome.identity_name!r} (state in {state_dir}); nothing to do")
    else:
        node = outcome.response.node if outcome.response else None
        where = f": overlay {node.overlay_ipv6}, {node.overlay_ipv4}" if node else ""
        print(f"enrolled as {outcome.identity_name!r}{where}")


def main() -> None:
    """Run the CLI, turning every ZTOS or validation error into one line and a non-zero exit.

    Typer's standalone mode handles usage errors itself (one line, exit 2).
    Exit codes: 1 refused or invalid, 4 temporary (retry later), 2 usage.
    """
    try:
        app()
    except ZtosError as exc:
        fail(f"{exc.detail} [{exc.code}]", 4 if exc.retry else 1)
    except ValidationError as exc:
        fail(format_validation_error("invalid value", exc))


def agent_main() -> None:
    sys.argv[1:1] = ["agent", "run"]
    main()


__all__ = ["app", "main", "ztos_home"]
