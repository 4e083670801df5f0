"""The network's DNS zone as served by the authoritative server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ztos.api.auth import READERS, controller_of, requires
from ztos.enroll.server import DnsZoneView
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1/dns", tags=["dns"])


@router.get("/records", response_model=DnsZoneView)
def records(request: Request, _: Annotated[Identity, Depends(requires(READERS))]) -> DnsZoneView:
    """Every record of the zone (read back from the server by AXFR) and where it is served."""
    return controller_of(request).dns_records()
