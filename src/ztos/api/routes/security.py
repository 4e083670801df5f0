"""Security posture of the network and of each host, and the CRL.

(The audit log moved to ``ztos.api.routes.monitoring``; its URL is unchanged.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from ztos.api.auth import ANYONE, READERS, controller_of, requires
from ztos.api.routes.monitoring import json_response, snapshots
from ztos.controller import Controller, SecurityOverview
from ztos.controller.metrics import metrics_view
from ztos.controller.status import host_security
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["security"])


@router.get("/security/status", response_model=SecurityOverview)
def security_status(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> Response:
    """CA, certificates and audit chain; per host: WireGuard key age, last handshake,
    certificate serial and expiry, MACsec state, posture attributes (at most 1 s old)."""
    controller = controller_of(request)
    return json_response(
        snapshots(request).get("security", lambda: overview(controller).model_dump_json().encode())
    )


def overview(controller: Controller) -> SecurityOverview:
    base = controller.security_status()
    nodes = controller.list_nodes()
    certificates = {record.serial: record for record in controller.certificates()}
    seen = metrics_view(controller.status_board.metrics, nodes, history=False).nodes
    hosts = host_security(nodes, certificates, {m.node: m for m in seen}, controller.clock())
    return SecurityOverview(**base.model_dump(), hosts=hosts)


@router.get("/security/crl", response_class=PlainTextResponse)
def crl(request: Request, _: Annotated[Identity, Depends(requires(ANYONE))]) -> str:
    """The signed certificate revocation list, PEM."""
    return controller_of(request).crl_pem()
