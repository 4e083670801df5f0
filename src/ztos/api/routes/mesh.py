"""What agents need to build the mesh: their node map, and their reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ztos.api.auth import NODES, controller_of, requires
from ztos.controller import NodeReport
from ztos.model import Node
from ztos.netmap import HeldMap, MapUpdate, NodeMap
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["mesh"])


@router.get("/netmap", response_model=NodeMap)
def node_map(request: Request, who: Annotated[Identity, Depends(requires(NODES))]) -> NodeMap:
    """The calling node's desired mesh state: its addresses, routes and peers."""
    return controller_of(request).node_map(who)


@router.get("/netmap/update", response_model=MapUpdate)
def node_map_update(
    request: Request,
    who: Annotated[Identity, Depends(requires(NODES))],
    held: Annotated[HeldMap, Query()],
) -> MapUpdate:
    """The calling node's map as an answer to the one it holds (``since``: the revision
    it came with; ``digest``/``rest``: ``netmap.map_digest``/``rest_digest`` of it):
    ``unchanged``, a ``delta`` of peers (and the rest when it moved), or the ``full`` map.
    Without a held map, or when this replica cannot tell what moved, the full map."""
    return controller_of(request).node_map_update(who, held)


@router.put("/nodes/self/report", response_model=Node)
def report(body: NodeReport, request: Request, who: Annotated[Identity, Depends(requires(NODES))]) -> Node:
    """An agent reports its underlay endpoints (its claim), listen port and underlay MTU;
    the controller records the TLS peer address it saw as the observed endpoint."""
    source = request.client.host if request.client is not None else None
    return controller_of(request).report(who, body, source)
