"""Enrolment, tokens and certificates: how identities come to exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ztos.api.auth import ANYONE, OPERATOR_WRITE, controller_of, requires
from ztos.controller import TokenCreated, actor_of
from ztos.enroll.server import EnrollRequest, EnrollResponse, TokenRequest
from ztos.pki import Identity, cert_to_pem

router = APIRouter(prefix="/api/v1", tags=["identity"])


class CaInfo(BaseModel):
    ca_pem: str
    fingerprint: str


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csr_pem: str = Field(max_length=8192)


class RenewResponse(BaseModel):
    certificate_pem: str


@router.get("/ca", response_model=CaInfo)
def get_ca(request: Request) -> CaInfo:
    """The CA certificate; hosts check it against the fingerprint their profile pins."""
    ca = controller_of(request).ca
    return CaInfo(ca_pem=cert_to_pem(ca.cert), fingerprint=ca.fingerprint)


@router.post("/enroll", response_model=EnrollResponse)
def enroll(body: EnrollRequest, request: Request) -> EnrollResponse:
    """Redeem a bootstrap token for a certificate (the only route without mTLS)."""
    source = request.client.host if request.client else "unknown"
    return controller_of(request).enroll(body, source)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    body: TokenRequest,
    request: Request,
    who: Annotated[Identity, Depends(requires(OPERATOR_WRITE, grants=True))],
) -> TokenCreated:
    """Create a single-use bootstrap token; its secret is shown only in this response."""
    return controller_of(request).create_token(actor_of(who), body)


@router.post("/certificates/renew", response_model=RenewResponse)
def renew(
    body: RenewRequest, request: Request, who: Annotated[Identity, Depends(requires(ANYONE, bearer=False))]
) -> RenewResponse:
    """Issue a fresh certificate for the caller's own identity."""
    return RenewResponse(certificate_pem=controller_of(request).renew(who, body.csr_pem))
