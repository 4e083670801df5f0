"""Browser sessions: bearer tokens minted with a client certificate or a login code.

A browser usually has no client certificate, so there are two ways in:

1. Anyone holding a person's certificate (admin, operator, auditor) calls
   ``POST /api/v1/session`` over mTLS and hands the returned token to the page
   (``Authorization: Bearer …`` on every call).
2. An admin runs ``ztos security login-link [--role auditor]`` (``POST
   /api/v1/session/login-code`` over mTLS); the link carries a one-time code in
   its fragment (``https://controller:8443/#login=CODE``), which the dashboard
   exchanges at ``POST /api/v1/session/exchange`` for a token. The code works
   once, for five minutes, at any controller of the network (it is kept,
   hashed, in the directory: ``ztos.controller.sessions``).

Sessions last ``--session-ttl`` (15 minutes by default), never longer than the
certificate behind them, and end, at every controller, when that certificate
is revoked or on ``DELETE /api/v1/session``. Every session created, and every refused
exchange, is in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ztos.api.auth import (
    ADMIN,
    ANYONE,
    PEOPLE,
    SessionClaims,
    auth_state,
    bearer_token,
    controller_of,
    peer_certificate,
    requires,
    session_claims,
)
from ztos.controller import actor_of
from ztos.errors import InvalidInput, ZtosError
from ztos.model import Role
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1/session", tags=["session"])


class SessionToken(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the scheme's name
    expires_at: datetime
    name: str
    role: Role


class WhoAmI(BaseModel):
    name: str
    role: Role
    serial: str
    via: str = Field(description="'certificate', or how the session was created")
    expires_at: datetime | None


class LoginCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(default=Role.AUDITOR, description="Role of the browser session (not node).")
    ttl_seconds: int = Field(default=300, ge=30, le=3600)


class LoginCodeCreated(BaseModel):
    code: str
    role: Role
    expires_at: datetime


class ExchangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)


def issue(request: Request, claims: SessionClaims, actor: str, detail: str) -> SessionToken:
    controller_of(request).audit(actor, "session.create", f"session:{claims.token_id}", "ok", detail)
    token = auth_state(request).sessions.encode(claims)
    return SessionToken(token=token, expires_at=claims.expires_at, name=claims.name, role=claims.role)


def certificate_not_after(request: Request) -> datetime:
    cert = peer_certificate(request)
    assert cert is not None  # requires(bearer=False) admitted a certificate
    return cert.not_valid_after_utc


@router.post("", response_model=SessionToken, status_code=201)
def create_session(
    request: Request, who: Annotated[Identity, Depends(requires(PEOPLE, bearer=False))]
) -> SessionToken:
    """A bearer token for the caller's own certificate (mTLS only; not for nodes)."""
    state = auth_state(request)
    claims = state.sessions.mint(
        who, state.settings.session_ttl, "certificate", certificate_not_after(request)
    )
    detail = f"bearer token for certificate {who.serial}, until {claims.expires_at.isoformat()}"
    return issue(request, claims, actor_of(who), detail)


@router.get("", response_model=WhoAmI)
def whoami(request: Request, who: Annotated[Identity, Depends(requires(ANYONE))]) -> WhoAmI:
    """Who the caller is (certificate or session), and until when a session lasts."""
    token = bearer_token(request)
    if token is None:
        return WhoAmI(name=who.name, role=who.role, serial=who.serial, via="certificate", expires_at=None)
    claims = session_claims(request, token)
    return WhoAmI(
        name=who.name, role=who.role, serial=who.serial, via=claims.via, expires_at=claims.expires_at
    )


@router.delete("", status_code=204)
def log_out(request: Request, who: Annotated[Identity, Depends(requires(ANYONE))]) -> None:
    """End the bearer session used for this call (certificates are revoked, not logged out)."""
    token = bearer_token(request)
    if token is None:
        raise InvalidInput("no bearer token on this request: there is no session to end")
    claims = session_claims(request, token)
    auth_state(request).sessions.log_out(claims)
    controller_of(request).audit(actor_of(who), "session.end", f"session:{claims.token_id}", "ok", "")


@router.post("/login-code", response_model=LoginCodeCreated, status_code=201)
def create_login_code(
    body: LoginCodeRequest,
    request: Request,
    who: Annotated[Identity, Depends(requires(ADMIN, bearer=False))],
) -> LoginCodeCreated:
    """A one-time code a browser exchanges for a session of ``role`` (admin mTLS only)."""
    if body.role not in PEOPLE:
        raise InvalidInput(f"role must be one of {', '.join(sorted(r.value for r in PEOPLE))}, not node")
    identity = Identity(name=who.name, role=body.role, serial=who.serial)
    code, expires = auth_state(request).login_codes.create(
        identity, certificate_not_after(request), body.ttl_seconds
    )
    expires_at = datetime.fromtimestamp(expires, UTC)
    detail = f"one-time login code for a {body.role.value} session, expires {expires_at.isoformat()}"
    controller_of(request).audit(actor_of(who), "session.login_code", f"role:{body.role.value}", "ok", detail)
    return LoginCodeCreated(code=code, role=body.role, expires_at=expires_at)


@router.post("/exchange", response_model=SessionToken, status_code=201)
def exchange(body: ExchangeRequest, request: Request) -> SessionToken:
    """Trade a one-time login code for a bearer token (no credentials needed but the code)."""
    state, controller = auth_state(request), controller_of(request)
    source = request.client.host if request.client else "unknown"
    try:
        login = state.login_codes.redeem(body.code)
    except ZtosError as exc:
        # rate-limited like every refusal: a looping guesser cannot flood the log
        controller.audit_refusal(f"browser@{source}", "session.exchange", "session", exc.detail, exc.code)
        raise
    claims = state.sessions.mint(login.claims_for, state.settings.session_ttl, "login-code", login.not_after)
    session_claims_ok(request, claims)
    detail = f"bearer token via login code from {source}, certificate {claims.serial}"
    return issue(request, claims, actor_of(login.claims_for), detail)


def session_claims_ok(request: Request, claims: SessionClaims) -> None:
    """The admin certificate behind a code may have been revoked since: check before issuing."""
    session_claims(request, auth_state(request).sessions.encode(claims))
