"""Nodes: list, pre-provision, revoke, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ztos.api.auth import ADMIN, OPERATOR_WRITE, READERS, controller_of, requires
from ztos.controller import TokenCreated, actor_of
from ztos.enroll.server import TokenRequest
from ztos.model import Name, Node, NodeView
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="revoked by admin", max_length=200)


@router.get("", response_model=list[NodeView])
def list_nodes(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> list[NodeView]:
    return controller_of(request).node_views()


@router.post("", response_model=TokenCreated, status_code=201)
def provision_node(
    body: TokenRequest,
    request: Request,
    who: Annotated[Identity, Depends(requires(OPERATOR_WRITE, grants=True))],
) -> TokenCreated:
    """Pre-provision a node: returns its signed profile with a bound single-use token."""
    return controller_of(request).create_token(actor_of(who), body)


@router.get("/{name}", response_model=NodeView)
def get_node(name: Name, request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> NodeView:
    return controller_of(request).node_view(name)


@router.post("/{name}/revoke", response_model=Node)
def revoke_node(
    name: Name,
    request: Request,
    who: Annotated[Identity, Depends(requires(ADMIN))],
    body: RevokeRequest | None = None,
) -> Node:
    reason = body.reason if body else RevokeRequest().reason
    return controller_of(request).revoke_node(actor_of(who), name, reason)


@router.delete("/{name}", status_code=204)
def delete_node(name: Name, request: Request, who: Annotated[Identity, Depends(requires(ADMIN))]) -> None:
    controller_of(request).delete_node(actor_of(who), name)
