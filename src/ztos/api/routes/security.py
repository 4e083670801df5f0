"""Security posture of the network, the CRL, and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from ztos.api.auth import ANYONE, READERS, controller_of, requires
from ztos.audit import verify_chain
from ztos.controller import SecurityStatus
from ztos.model import AuditEvent
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["security", "monitoring"])


class AuditPage(BaseModel):
    events: list[AuditEvent]
    next_after: int
    chain_ok: bool | None = None
    first_bad_seq: int | None = None


@router.get("/security/status", response_model=SecurityStatus)
def security_status(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> SecurityStatus:
    return controller_of(request).security_status()


@router.get("/security/crl", response_class=PlainTextResponse)
def crl(request: Request, _: Annotated[Identity, Depends(requires(ANYONE))]) -> str:
    """The signed certificate revocation list, PEM."""
    return controller_of(request).crl_pem()


@router.get("/monitoring/logs", response_model=AuditPage)
def audit_logs(
    request: Request,
    _: Annotated[Identity, Depends(requires(READERS))],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    verify: bool = False,
) -> AuditPage:
    """Audit events after sequence ``after``; ``verify=true`` checks the whole hash chain."""
    controller = controller_of(request)
    events = controller.audit_log(after, limit)
    page = AuditPage(events=events, next_after=events[-1].seq if events else after)
    if verify:
        bad = verify_chain(controller.audit_log(0, 10**9))
        page.chain_ok, page.first_bad_seq = bad is None, bad
    return page
