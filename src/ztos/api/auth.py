"""Who is calling, and may they: client certificates, bearer sessions, roles.

Two ways to prove an identity, checked on every request:

* **mTLS client certificate** (CLI, agents, scripts). The TLS layer
  (``ztos.api.server``) already refuses certificates from another CA; here the
  certificate is parsed, checked against the revocation list in the directory
  and mapped to an identity.
* **Bearer session token** (``Authorization: Bearer zt1.…``), for the browser,
  which cannot easily hold a client certificate. A session is minted by
  ``POST /api/v1/session`` *with* a client certificate (or by exchanging a
  one-time login code an admin created with theirs), lives 15 minutes by
  default and carries the role, name and serial of that certificate. Tokens
  are HMAC-signed with a key derived from the CA key, so every controller of
  the network accepts them and none has to remember them; each use re-checks
  the certificate's revocation, so revoking a certificate ends its sessions at
  once. Logging out records the token's end in the directory's shared state
  (``ztos.controller.sessions``), so every controller refuses it from then on.

Roles (``Role``), and the sets routes name in ``requires(...)``:

==============  =========================================================
``ADMIN``         everything (network configuration, policy, revocation)
``OPERATOR_WRITE``  admin, operator: day-to-day changes (node tokens, tenant
                  attach/detach, workloads)
``READERS``       admin, operator, auditor: every read-only route
``NODES``         agents: their node map and reports
``ANYONE``        any valid identity (its own certificate renewal, watch)
==============  =========================================================

Refusals by role are written to the audit log. ``install`` annotates every
operation of the OpenAPI schema with ``x-ztos-roles`` and ``x-ztos-auth``, so
clients (the dashboard) can tell what a role may do without trying it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ztos import pki
from ztos.controller import Controller, actor_of
from ztos.controller.sessions import EndedSessions, LoginCodes
from ztos.errors import Conflict, Forbidden, InvalidInput, Unauthenticated, ZtosError
from ztos.model import Role
from ztos.naming import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_RE
from ztos.pki import Identity

PEER_CERT_SCOPE_KEY = "ztos.peer_cert_der"

ADMIN = frozenset({Role.ADMIN})
OPERATOR_WRITE = frozenset({Role.ADMIN, Role.OPERATOR})
READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.AUDITOR})
ANYONE = frozenset(Role)
NODES = frozenset({Role.NODE})
PEOPLE = READERS  # roles that may hold a browser session

# Which roles an identity may hand out in a bootstrap token (``requires(..., grants=True)``):
# an operator onboards hosts; only an admin creates people's identities.
GRANTABLE: dict[Role, frozenset[Role]] = {Role.ADMIN: ANYONE, Role.OPERATOR: NODES}

TOKEN_PREFIX = "zt1"  # noqa: S105 - a format marker, not a secret
DEFAULT_SESSION_TTL = 900
DEFAULT_LOGIN_CODE_TTL = 300
MAX_TOKEN_LENGTH = 2048
SESSION_KEY_INFO = b"ztos api session tokens v1"


@dataclass(frozen=True)
class ApiSettings:
    """API options of one controller process.

    Read from the environment (``ztos controller serve --session-ttl/--metrics-public``
    export them) because the server builds the app from the controller alone.
    """

    session_ttl: int = DEFAULT_SESSION_TTL
    login_code_ttl: int = DEFAULT_LOGIN_CODE_TTL
    metrics_public: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ApiSettings:
        env = dict(os.environ) if env is None else env
        return cls(
            session_ttl=_positive_int(env, "ZTOS_SESSION_TTL", DEFAULT_SESSION_TTL),
            login_code_ttl=_positive_int(env, "ZTOS_LOGIN_CODE_TTL", DEFAULT_LOGIN_CODE_TTL),
            metrics_public=env.get("ZTOS_METRICS_PUBLIC", "").lower() in ("1", "true", "yes"),
        )


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{name}={text!r} must be a whole number of seconds, at least 1")
    return int(text)


# --- session tokens --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionClaims:
    """What a bearer token says: whose certificate vouches for it, as what, until when."""

    name: str
    role: Role
    serial: str
    expires: int  # Unix seconds
    token_id: str
    via: str  # "certificate" or "login-code"

    def identity(self) -> Identity:
        return Identity(name=self.name, role=self.role, serial=self.serial)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


class SessionSigner:
    """Mints and checks ``zt1.<claims>.<hmac>`` tokens; stateless but for logouts,
    which are in the store (``EndedSessions``) and so seen by every replica."""

    def __init__(self, key: bytes, ended: EndedSessions, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ended = ended
        self._clock = clock

    @classmethod
    def for_controller(cls, controller: Controller) -> SessionSigner:
        """Every controller of a network shares the CA key, so they share this key too."""
        raw = controller.ca.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SESSION_KEY_INFO).derive(raw)
        return cls(key, controller.ended_sessions)

    def mint(
        self, identity: Identity, ttl: int, via: str, not_after: datetime | None = None
    ) -> SessionClaims:
        """Claims for ``identity``, never outliving the certificate behind them."""
        expires = int(self._clock()) + ttl
        if not_after is not None:
            expires = min(expires, int(not_after.timestamp()))
        return SessionClaims(
            identity.name, identity.role, identity.serial, expires, secrets.token_hex(8), via
        )

    def encode(self, claims: SessionClaims) -> str:
        body = {
            "sub": claims.name,
            "role": claims.role.value,
            "ser": claims.serial,
            "exp": claims.expires,
            "jti": claims.token_id,
            "via": claims.via,
        }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{TOKEN_PREFIX}.{payload}.{self._sign(payload)}"

    def decode(self, token: str) -> SessionClaims:
        """The claims of a valid, unexpired, not logged-out token; ``Unauthenticated`` otherwise."""
        parts = token.split(".")
        if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise Unauthenticated("bearer token is malformed", code="session_invalid")
        if not hmac.compare_digest(parts[2], self._sign(parts[1])):
            raise Unauthenticated("bearer token signature does not verify", code="session_invalid")
        claims = _claims_of(parts[1])
        if claims.expires <= self._clock():
            raise Unauthenticated(
                f"session expired at {claims.expires_at.isoformat()}: sign in again", code="session_expired"
            )
        if self._ended.ended(claims.token_id):
            raise Unauthenticated("this session was logged out", code="session_expired")
        return claims

    def log_out(self, claims: SessionClaims) -> None:
        self._ended.end(claims.token_id, claims.expires)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _claims_of(payload: str) -> SessionClaims:
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return SessionClaims(
            name=str(body["sub"]),
            role=Role(body["role"]),
            serial=str(body["ser"]),
            expires=int(body["exp"]),
            token_id=str(body["jti"]),
            via=str(body["via"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated("bearer token claims are unreadable", code="session_invalid") from exc


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- per-app state and the dependency -------------------------------------------------------


@dataclass
class AuthState:
    settings: ApiSettings
    sessions: SessionSigner
    login_codes: LoginCodes


def install(app: FastAPI, controller: Controller, settings: ApiSettings | None = None) -> None:
    """Give the app its session state and annotate the schema; call after adding routes."""
    settings = settings or ApiSettings.from_env()
    app.state.auth = AuthState(settings, SessionSigner.for_controller(controller), controller.login_codes)
    for route in _api_routes(app.routes):  # a route's own note wins
        route.openapi_extra = {**_schema_note(route), **(route.openapi_extra or {})}
    document_errors(app)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "title": "Error", "description": "stable machine code"},
        "detail": {"type": "string", "title": "Detail", "description": "what is wrong and how to fix it"},
    },
}
ERROR_RESPONSE = {
    "description": "Error: {error, detail} (400 bad input, 401 credentials, 403 role, 404, 409, 413, 422)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_errors(app: FastAPI) -> None:
    """Make the schema say what ``ztos.api.errors`` sends: every error is ``{error, detail}``.

    FastAPI documents its own 422 body (``detail`` as a list), which ZTOS never
    sends; that component is replaced, and every operation gets the error body
    as its ``default`` response, so clients and schema checks see the truth.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Error"] = ERROR_SCHEMA
            components["HTTPValidationError"] = {**ERROR_SCHEMA, "title": "HTTPValidationError"}
            components.pop("ValidationError", None)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.setdefault("responses", {}).setdefault("default", ERROR_RESPONSE)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI keeps those nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(inner.routes)


def _schema_note(route: APIRoute) -> dict[str, Any]:
    guards = [dep.call for dep in route.dependant.dependencies if isinstance(dep.call, Requires)]
    if not guards:
        return {"x-ztos-auth": "none"}
    guard = guards[0]
    auth = "client certificate"
    if guard.bearer and guard.roles & PEOPLE:  # nodes never hold sessions
        auth += " or bearer token" + (" (header or ?access_token=)" if guard.query_token else "")
    return {"x-ztos-roles": sorted(role.value for role in guard.roles), "x-ztos-auth": auth}


def controller_of(request: Request) -> Controller:
    controller: Controller = request.app.state.controller
    return controller


def auth_state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


def peer_certificate(request: Request) -> x509.Certificate | None:
    der = request.scope.get(PEER_CERT_SCOPE_KEY)
    return x509.load_der_x509_certificate(der) if der else None


def bearer_token(request: Request, *, query: bool = False) -> str | None:
    """The bearer token of the request: its Authorization header or, where ``query``
    is allowed (server-sent events from a browser), its ``access_token`` parameter."""
    header = request.headers.get("authorization")
    if header is None:
        return request.query_params.get("access_token") if query else None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'", code="session_invalid")
    return token.strip()


def session_claims(request: Request, token: str) -> SessionClaims:
    """Check a bearer token and the certificate behind it (revocation ends its sessions)."""
    claims = auth_state(request).sessions.decode(token)
    record = controller_of(request).certificate(claims.serial)
    if record is None or record.revoked_at is not None:
        raise Unauthenticated(
            f"the certificate behind this session ({claims.serial}) was revoked: sign in again",
            code="certificate_revoked",
        )
    return claims


class Requires:
    """A FastAPI dependency admitting only ``roles``; refusals by role are audited.

    ``bearer=False`` insists on a client certificate: a session must not mint
    certificates or further sessions. ``grants=True`` also checks the body's
    ``role`` (a token request) against what the caller may hand out (``GRANTABLE``).
    ``query_token=True`` also takes the token from ``?access_token=`` (EventSource).
    """

    def __init__(
        self, roles: frozenset[Role], *, bearer: bool = True, grants: bool = False, query_token: bool = False
    ) -> None:
        self.roles = roles
        self.bearer = bearer
        self.grants = grants
        self.query_token = query_token

    async def __call__(self, request: Request) -> Identity:
        identity = await run_in_threadpool(self.check, request)
        if self.grants:
            wanted = _requested_role(await request.body())
            allowed = GRANTABLE.get(identity.role, frozenset())
            if wanted is not None and wanted not in allowed:
                names = ", ".join(sorted(role.value for role in allowed)) or "nothing"
                detail = f"{identity.role.value} {identity.name!r} may create tokens for {names} only"
                await run_in_threadpool(self._refuse, request, identity, Forbidden(detail))
        return identity

    def check(self, request: Request) -> Identity:
        controller = controller_of(request)
        try:
            token = bearer_token(request, query=self.query_token)
            identity = (
                session_claims(request, token).identity()
                if token is not None
                else controller.authenticate(peer_certificate(request))
            )
        except Unauthenticated as exc:
            target = f"{request.method} {request.url.path}"
            who = _claimed_identity(request)
            controller.audit_refusal(who, "api.call", target, f"{exc.code}: {exc.detail}", reason=exc.code)
            raise
        try:
            controller.authorize(identity, self.roles)
        except Forbidden as exc:
            self._refuse(request, identity, exc)
        if token is not None and not self.bearer:
            raise Unauthenticated("this route needs a client certificate, not a bearer token")
        if identity.role is Role.NODE:
            controller.note_seen(identity.name)  # any agent call: posture, report, metrics, watch
        _check_idempotency(request, controller, identity)
        return identity

    @staticmethod
    def _refuse(request: Request, identity: Identity, exc: Forbidden) -> None:
        target = f"{request.method} {request.url.path}"
        controller_of(request).audit_refusal(
            actor_of(identity), "api.call", target, exc.detail, reason=f"{exc.code} {target}"
        )
        raise exc


def _check_idempotency(request: Request, controller: Controller, identity: Identity) -> None:
    """A write with an ``Idempotency-Key`` runs once: a resend answers 409 ``duplicate_request``."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if IDEMPOTENCY_KEY_RE.fullmatch(key) is None:
        raise InvalidInput(f"{IDEMPOTENCY_HEADER} must be 8-128 of A-Z a-z 0-9 . _ - (a random id per write)")
    if not controller.first_delivery(actor_of(identity), request.method, request.url.path, key):
        raise Conflict(
            f"this request ({IDEMPOTENCY_HEADER} {key}) already reached a controller and was not "
            "applied again: check its effect before sending it under a new key",
            code="duplicate_request",
        )


def _claimed_identity(request: Request) -> str:
    """Who a refused caller claims to be, for the audit log: the name and serial of
    its certificate (unverified: it was just refused), else its address."""
    source = request.client.host if request.client else "unknown"
    try:
        cert = peer_certificate(request)
        if cert is not None:
            claimed = pki.identity_of(cert)
            return f"cert:{claimed.name}#{claimed.serial}@{source}"
    except (ValueError, ZtosError):
        pass
    return f"anonymous@{source}"


def _requested_role(body: bytes) -> Role | None:
    """The ``role`` a token request asks for (default node); None when unreadable,
    which the route's own validation then refuses."""
    try:
        data = json.loads(body or b"{}")
        return Role(data.get("role", Role.NODE.value)) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None


def requires(
    roles: frozenset[Role], *, bearer: bool = True, grants: bool = False, query_token: bool = False
) -> Requires:
    return Requires(roles, bearer=bearer, grants=grants, query_token=query_token)
