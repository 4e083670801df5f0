"""``ztos policy``: apply, show, diff, test, history, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ztos.cli.context import fail, print_json, print_table, state
from ztos.controller.policies import PolicyChanges, PolicyDecision, PolicyState, PolicyView

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
policy_app = typer.Typer(help="The network's zero-trust policy (default deny).", no_args_is_help=True)


def _body(file: Path, comment: str = "") -> dict[str, str]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    return {"text": text, "source": str(file), "comment": comment}


@policy_app.command("apply")
def apply(
    ctx: typer.Context,
    file: Path,
    comment: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Validate FILE and make it the policy in force (refused whole if anything is wrong)."""
    view = PolicyView.model_validate(
        state(ctx).client().request("POST", "/api/v1/policies", json=_body(file, comment))
    )
    if json_out:
        print_json(view.model_dump(mode="json", exclude={"text"}))
    else:
        print(f"policy revision {view.rev} applied ({view.digest[:12]}); hosts enforce it within seconds")


@policy_app.command("show")
def show(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """The policy in force, or whether the network is open or default deny without one."""
    client = state(ctx).client()
    mode = PolicyState.model_validate(client.request("GET", "/api/v1/policies/state"))
    if mode.rev is None:
        print_json(mode) if json_out else print(mode.detail)
        return
    view = PolicyView.model_validate(client.request("GET", "/api/v1/policies"))
    if json_out:
        print_json(view)
    else:
        print(
            f"# revision {view.rev} by {view.created_by} at {view.created_at:%Y-%m-%d %H:%M} UTC"
            f" ({view.source})"
        )
        print(view.text, end="" if view.text.endswith("\n") else "\n")


@policy_app.command("diff")
def diff(ctx: typer.Context, file: Path, json_out: JsonFlag = False) -> None:
    """What applying FILE would change."""
    changes = PolicyChanges.model_validate(
        state(ctx).client().request("POST", "/api/v1/policies/diff", json=_body(file))
    )
    if json_out:
        print_json(changes)
        return
    print(f"against revision {changes.current_rev}:" if changes.current_rev else "no policy applied yet:")
    for line in changes.changes or ["no change"]:
        print(f"  {line}")


@policy_app.command("test")
def test(
    ctx: typer.Context,
    src: Annotated[str, typer.Option("--from", help="Identity: workload or node name (node:h1).")],
    dst: Annotated[str, typer.Option("--to", help="Identity: workload or node name.")],
    port: Annotated[str, typer.Option(help="tcp/5432, udp/53 or icmp.")],
    json_out: JsonFlag = False,
) -> None:
    """Would --from reach --to on --port? Says which rule decided and why (exit 1 on deny)."""
    body = {"from": src, "to": dst, "port": port}
    decision = PolicyDecision.model_validate(
        state(ctx).client().request("POST", "/api/v1/policies/test", json=body)
    )
    if json_out:
        print_json(decision)
    else:
        print(f"{'ALLOW' if decision.allowed else 'DENY'} {src} -> {dst} {port}: {decision.reason}")
    if not decision.allowed:
        raise typer.Exit(1)


@policy_app.command("history")
def history(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every revision applied, oldest first."""
    views = [
        PolicyView.model_validate(v) for v in state(ctx).client().request("GET", "/api/v1/policies/history")
    ]
    if json_out:
        print_json([v.model_dump(mode="json", exclude={"text"}) for v in views])
        return
    rows = [
        [v.rev, f"{v.created_at:%Y-%m-%d %H:%M}", v.created_by, v.source, v.digest[:12], v.comment]
        for v in views
    ]
    print_table("policy revisions", ["rev", "applied (UTC)", "by", "source", "digest", "comment"], rows)


@policy_app.command("rollback")
def rollback(ctx: typer.Context, rev: int) -> None:
    """Apply revision REV again (as a new revision)."""
    body = state(ctx).client().request("POST", "/api/v1/policies/rollback", json={"rev": rev})
    view = PolicyView.model_validate(body)
    print(f"policy revision {rev} applied again as revision {view.rev}")
