"""What agents need to build the mesh: their node map, and their reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ztos.api.auth import NODES, controller_of, requires
from ztos.controller import NodeReport
from ztos.model import Node
from ztos.netmap import NodeMap
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["mesh"])


@router.get("/netmap", response_model=NodeMap)
def node_map(request: Request, who: Annotated[Identity, Depends(requires(NODES))]) -> NodeMap:
    """The calling node's desired mesh state: its addresses, routes and peers."""
    return controller_of(request).node_map(who)


@router.put("/nodes/self/report", response_model=Node)
def report(body: NodeReport, request: Request, who: Annotated[Identity, Depends(requires(NODES))]) -> Node:
    """An agent reports its underlay endpoints (its claim), listen port and underlay MTU;
    the controller records the TLS peer address it saw as the observed endpoint."""
    source = request.client.host if request.client is not None else None
    return controller_of(request).report(who, body, source)
