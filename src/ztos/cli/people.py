"""People and tokens: ``ztos user list/show/revoke``, ``ztos token list/revoke``.

Offboarding a person revokes their certificates; revoking a token kills a
leaked one before it is used. Names are checked before any request.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ztos import naming
from ztos.cli.admin import JsonFlag, token_app
from ztos.cli.context import checked_name, print_json, print_table, state
from ztos.client import api_path
from ztos.controller import TokenInfo, UserInfo
from ztos.errors import InvalidInput

user_app = typer.Typer(help="People: operators, auditors and admins.", no_args_is_help=True)


def user_path(name: str, *rest: str) -> str:
    """``/api/v1/users/<name>/…`` for a valid name only, refused before any request:
    ``../nodes/victim`` must never address another record."""
    return api_path("users", checked_name(name, "user"), *rest)


def _print_user(user: UserInfo) -> None:
    print(f"user     {user.name}")
    print(f"roles    {', '.join(role.value for role in user.roles) or '-'}")
    print(f"revoked  {'yes' if user.revoked else 'no'}")
    rows = [
        [c.serial[:12], c.role.value, f"{c.not_after:%Y-%m-%d %H:%M}", "yes" if c.revoked else "no"]
        for c in user.certificates
    ]
    print_table("certificates", ["serial", "role", "expires (UTC)", "revoked"], rows)


@user_app.command("list")
def user_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every person known to the directory and whether they are revoked."""
    body = state(ctx).client().request("GET", "/api/v1/users")
    if json_out:
        print_json(body)
        return
    users = [UserInfo.model_validate(item) for item in body]
    rows = [
        [u.name, ", ".join(r.value for r in u.roles), len(u.certificates), "yes" if u.revoked else "no"]
        for u in users
    ]
    print_table("users", ["name", "roles", "certificates", "revoked"], rows)


@user_app.command("show")
def user_show(ctx: typer.Context, name: str, json_out: JsonFlag = False) -> None:
    """One person and their certificates."""
    body = state(ctx).client().request("GET", user_path(name))
    if json_out:
        print_json(body)
    else:
        _print_user(UserInfo.model_validate(body))


@user_app.command("revoke")
def user_revoke(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "revoked by admin",
    json_out: JsonFlag = False,
) -> None:
    """Offboard a person: every certificate of theirs stops working at once."""
    path = user_path(name, "revoke")
    body = state(ctx).client().request("POST", path, json={"reason": reason})
    if json_out:
        print_json(body)
    else:
        print(f"user {name!r} revoked")


@token_app.command("list")
def token_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every bootstrap token (never its secret): id, name, role, expiry, used, revoked."""
    body = state(ctx).client().request("GET", "/api/v1/tokens")
    if json_out:
        print_json(body)
        return
    tokens = [TokenInfo.model_validate(item) for item in body]
    rows = [
        [
            t.id,
            t.node_name,
            t.role.value,
            f"{t.expires_at:%Y-%m-%d %H:%M}",
            "yes" if t.used else "no",
            "yes" if t.revoked else "no",
        ]
        for t in tokens
    ]
    print_table("tokens", ["id", "name", "role", "expires (UTC)", "used", "revoked"], rows)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str, json_out: JsonFlag = False) -> None:
    """Revoke a token so it can never enrol (e.g. it leaked)."""
    if not naming.is_token_id(token_id):
        raise InvalidInput(f"token id {token_id!r} is not valid: 8-32 letters, digits, '-' or '_'")
    path = api_path("tokens", token_id, "revoke")
    body = state(ctx).client().request("POST", path)
    if json_out:
        print_json(body)
    else:
        print(f"token {token_id} revoked")
