"""``ztos monitoring …`` (audit log, metrics, a live view) and ``ztos security login-link``.

Thin clients of the monitoring API: ``logs`` pages (and with ``--follow``
polls) ``/api/v1/monitoring/logs`` with ``after``; ``top`` redraws a rich
table of hosts from ``/api/v1/monitoring/metrics`` every second; ``metrics``
prints the same data once (``--prometheus`` for the scraper's view).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer
from rich.live import Live
from rich.table import Table

from ztos.cli.context import console, fail, parse_duration, print_json, print_table, state
from ztos.client import ApiClient, error_from_response
from ztos.controller.metrics import MetricsView, NodeMetrics
from ztos.errors import InvalidInput, Unreachable, ZtosError
from ztos.model import AuditEvent, Role

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
HANDSHAKE_FRESH_SECONDS = 180.0  # WireGuard rekeys every 2 minutes while traffic flows

monitoring_app = typer.Typer(help="Audit log, metrics and a live view of the hosts.", no_args_is_help=True)


# --- logs --------------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> str:
    """``1h``/``30m``/``2d`` ago, or an ISO 8601 time (UTC when it names no zone) -> ISO."""
    try:
        return (now - timedelta(seconds=parse_duration(text))).isoformat()
    except InvalidInput:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"--since {text!r} must be a duration (90s, 15m, 1h, 7d) or an ISO time") from exc
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def log_line(event: AuditEvent) -> str:
    detail = f"  {event.detail}" if event.detail else ""
    return (
        f"{event.seq:>6}  {event.at:%Y-%m-%d %H:%M:%S}  {event.outcome:<7} {event.actor}  "
        f"{event.action}  {event.target}{detail}"
    )


def print_events(events: list[AuditEvent], json_lines: bool) -> None:
    for event in events:
        if json_lines:
            print(event.model_dump_json(), flush=True)
        else:
            console.print(log_line(event), highlight=False, markup=False, soft_wrap=True)


@monitoring_app.command("logs")
def monitoring_logs(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many events (per poll with --follow).")] = 200,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    node: Annotated[str | None, typer.Option(help="Events about or by this node.")] = None,
    since: Annotated[str | None, typer.Option(help="1h, 30m, 2d ago, or an ISO time.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, or its prefix: node, node.revoke.")] = None,
    actor: Annotated[str | None, typer.Option(help="role:name, a name or a role.")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok or refused.")] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="Text anywhere in the event.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 1.0,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Show the tamper-evident audit log, filtered; --follow keeps polling for new events."""
    client = state(ctx).client()
    filters = {"node": node, "action": action, "actor": actor, "outcome": outcome, "q": search}
    params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    if since is not None:
        params["since"] = parse_since(since, datetime.now(UTC))
    page = client.request(
        "GET", "/api/v1/monitoring/logs", params={**params, "after": after, "limit": limit, "verify": verify}
    )
    events = [AuditEvent.model_validate(e) for e in page["events"]]
    if follow:
        print_events(events, json_out)
        check_chain(page, verify, quiet=True)
        follow_log(client, params, int(page["next_after"]), limit, interval, json_out)
        return
    show_page(page, events, json_out)
    check_chain(page, verify, quiet=json_out)


def show_page(page: dict[str, Any], events: list[AuditEvent], json_out: bool) -> None:
    if json_out:
        print_json(page)
        return
    rows = [
        [e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, e.outcome, e.detail] for e in events
    ]
    columns = ["seq", "time (UTC)", "actor", "action", "target", "outcome", "detail"]
    print_table("audit log", columns, rows)


def check_chain(page: dict[str, Any], verify: bool, *, quiet: bool) -> None:
    if not verify:
        return
    if not page["chain_ok"]:
        fail(f"audit chain broken at event {page['first_bad_seq']}: the log was altered", 3)
    if not quiet:
        print("audit chain verified: intact")


def follow_log(
    client: ApiClient, params: dict[str, Any], cursor: int, limit: int, interval: float, json_lines: bool
) -> None:
    """Poll with ``after`` until interrupted; a controller outage is waited out."""
    try:
        while True:
            time.sleep(interval)
            try:
                page = client.request(
                    "GET", "/api/v1/monitoring/logs", params={**params, "after": cursor, "limit": limit}
                )
            except Unreachable:
                continue
            print_events([AuditEvent.model_validate(e) for e in page["events"]], json_lines)
            cursor = int(page["next_after"])
    except KeyboardInterrupt:
        return


# --- metrics and top -----------------------------------------------------------------------------


def human_rate(rate: float) -> str:
    return human_bytes(rate) + "/s"


def short_rate(rate: float) -> str:
    """``3.1M`` (bytes/s, binary units): narrow enough for ten columns in 80 characters."""
    for unit in ("B", "K", "M", "G"):
        if rate < 1024 or unit == "G":
            return f"{rate:.0f}{unit}" if unit == "B" else f"{rate:.1f}{unit}"
        rate /= 1024
    raise AssertionError("unreachable")


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def node_state(node: NodeMetrics) -> str:
    if node.status.value != "active":
        return f"[red]{node.status.value}[/red]"
    return "[green]up[/green]" if node.up else "[red]down[/red]"


def top_row(node: NodeMetrics) -> list[str]:
    ages = [p.handshake_age_seconds for p in node.peers if p.handshake_age_seconds is not None]
    fresh = sum(age < HANDSHAKE_FRESH_SECONDS for age in ages)
    return [
        node.node,
        node_state(node),
        f"{fresh}/{len(node.peers)}",
        human_age(min(ages)) if ages else "-",
        human_age(max(ages)) if ages else "-",
        short_rate(node.rx_rate),
        short_rate(node.tx_rate),
        f"{node.reconcile_seconds * 1000:.0f}ms" if node.reconcile_seconds is not None else "-",
        str(node.reconcile_errors_total) if node.reconcile_errors_total is not None else "-",
        human_age(node.report_age_seconds),
    ]


def top_table(view: MetricsView, problem: str | None = None) -> Table:
    up = sum(n.up for n in view.nodes)
    title = f"ZTOS hosts: {up}/{len(view.nodes)} up, {view.at:%H:%M:%S} UTC"
    table = Table(title=title + (f"  [red]({problem})[/red]" if problem else ""))
    columns = ["host", "state", "peers", "hs min", "hs max", "rx/s", "tx/s", "recon", "err", "seen"]
    for column in columns:
        right = column in ("rx/s", "tx/s", "recon", "err")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for node in view.nodes:
        table.add_row(*top_row(node))
    return table


def fetch_view(
    client: ApiClient, *, history: bool = False, detail: bool = False, node: str | None = None
) -> MetricsView:
    params: dict[str, Any] = {"history": history, "detail": detail}
    if node is not None:
        params["node"] = node
    return MetricsView.model_validate(client.request("GET", "/api/v1/monitoring/metrics", params=params))


@monitoring_app.command("top")
def monitoring_top(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
) -> None:
    """A live table of hosts: up/down, peers with a fresh handshake, handshake ages, traffic."""
    client = state(ctx).client()
    view = fetch_view(client)
    if once:
        console.print(top_table(view))
        return
    try:
        with Live(top_table(view), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                problem = None
                try:
                    view = fetch_view(client)
                except ZtosError as exc:
                    problem = exc.detail
                live.update(top_table(view, problem), refresh=True)
    except KeyboardInterrupt:
        return


@monitoring_app.command("metrics")
def monitoring_metrics(
    ctx: typer.Context,
    node: Annotated[str | None, typer.Option(help="Only this node.")] = None,
    prometheus: Annotated[bool, typer.Option("--prometheus", help="Print GET /metrics as is.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Per-peer and per-tenant counters and rates of every host (the dashboard's data)."""
    client = state(ctx).client()
    if prometheus:
        print(get_text(client, "/metrics"), end="")
        return
    view = fetch_view(client, history=json_out, node=node)
    if json_out:
        print_json(view)
        return
    peers = [
        [
            n.node,
            p.peer,
            human_bytes(p.rx_bytes),
            human_bytes(p.tx_bytes),
            human_rate(p.rx_rate),
            human_rate(p.tx_rate),
            human_age(p.handshake_age_seconds),
        ]
        for n in view.nodes
        for p in n.peers
    ]
    print_table("peers", ["node", "peer", "rx", "tx", "rx/s", "tx/s", "handshake"], peers)
    tenants = [
        [
            n.node,
            t.tenant,
            t.vni,
            human_bytes(t.rx_bytes),
            human_bytes(t.tx_bytes),
            human_rate(t.rx_rate),
            human_rate(t.tx_rate),
        ]
        for n in view.nodes
        for t in n.tenants
    ]
    if tenants:
        print_table("tenants", ["node", "tenant", "VNI", "rx", "tx", "rx/s", "tx/s"], tenants)


def get_text(client: ApiClient, path: str) -> str:
    """A non-JSON GET through the client's connections (first controller that answers)."""
    last: ZtosError = Unreachable("no controller URL configured")
    for url in client.urls:
        try:
            response = client.session(url).get(path)
        except httpx.TransportError as exc:
            last = Unreachable(f"controller {url}: {exc}")
            continue
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.text
    raise last


# --- ztos security login-link (registered on the security group by ztos.cli.main) ------------------


def login_link(
    ctx: typer.Context,
    role: Annotated[
        Role, typer.Option(help="Role of the browser session: admin, operator or auditor.")
    ] = Role.ADMIN,
    ttl: Annotated[str, typer.Option(help="How long the code can be used: 5m, 30m, 1h.")] = "5m",
    json_out: JsonFlag = False,
) -> None:
    """A one-time link that signs a browser in to the dashboard (no client certificate needed)."""
    cli = state(ctx)
    body = {"role": role.value, "ttl_seconds": parse_duration(ttl)}
    created = cli.client().request("POST", "/api/v1/session/login-code", json=body)
    url = f"{cli.controller_urls()[0].rstrip('/')}/#login={created['code']}"
    if json_out:
        print_json({**created, "url": url})
        return
    print(f"one-time {created['role']} login, usable once until {created['expires_at']}:")
    print(url)
    print('open it in a browser, or POST {"code": …} to /api/v1/session/exchange for a bearer token')
