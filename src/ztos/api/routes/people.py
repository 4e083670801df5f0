"""People and bootstrap tokens: list, show, revoke (offboarding, killing leaked tokens).

Writes are admin only (they decide who may be on the network); every reader
may list, as with nodes. Every write goes through
``Controller`` (one transaction, audited); token listings never carry secrets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ztos.api.auth import ADMIN, READERS, controller_of, requires
from ztos.controller import TokenInfo, UserInfo, actor_of
from ztos.model import Name, TokenId
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["identity"])


class UserRevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="revoked by admin", max_length=200)


@router.get("/users", response_model=list[UserInfo])
def list_users(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> list[UserInfo]:
    return controller_of(request).list_users()


@router.get("/users/{name}", response_model=UserInfo)
def get_user(name: Name, request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> UserInfo:
    return controller_of(request).get_user(name)


@router.post("/users/{name}/revoke", response_model=UserInfo)
def revoke_user(
    name: Name,
    request: Request,
    who: Annotated[Identity, Depends(requires(ADMIN))],
    body: UserRevokeRequest | None = None,
) -> UserInfo:
    """Revoke every certificate of a person: the API refuses them (and their sessions) at once."""
    reason = (body or UserRevokeRequest()).reason
    return controller_of(request).revoke_user(actor_of(who), name, reason)


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> list[TokenInfo]:
    """Every bootstrap token: id, name, role, expiry, used/revoked; never a secret."""
    return controller_of(request).list_tokens()


@router.delete("/tokens/{token_id}", response_model=TokenInfo)
def delete_token(
    token_id: TokenId, request: Request, who: Annotated[Identity, Depends(requires(ADMIN))]
) -> TokenInfo:
    """Revoke a token (kept, marked revoked, so the log and listings still explain it)."""
    return controller_of(request).revoke_token(actor_of(who), token_id)


@router.post("/tokens/{token_id}/revoke", response_model=TokenInfo)
def revoke_token(
    token_id: TokenId, request: Request, who: Annotated[Identity, Depends(requires(ADMIN))]
) -> TokenInfo:
    return controller_of(request).revoke_token(actor_of(who), token_id)
