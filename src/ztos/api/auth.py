"""Who is calling: the TLS client certificate, checked on every request.

The TLS layer (``ztos.api.tls``) already refuses certificates from another CA;
here the certificate is parsed, checked against the revocation list in the
directory and mapped to an identity, and the route's roles are enforced.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from fastapi import Request

from ztos.controller import Controller, actor_of
from ztos.errors import Forbidden
from ztos.model import Role
from ztos.pki import Identity

PEER_CERT_SCOPE_KEY = "ztos.peer_cert_der"

ADMIN = frozenset({Role.ADMIN})
READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.AUDITOR})
ANYONE = frozenset(Role)
NODES = frozenset({Role.NODE})


def controller_of(request: Request) -> Controller:
    controller: Controller = request.app.state.controller
    return controller


def peer_certificate(request: Request) -> x509.Certificate | None:
    der = request.scope.get(PEER_CERT_SCOPE_KEY)
    return x509.load_der_x509_certificate(der) if der else None


def requires(roles: frozenset[Role]) -> Callable[[Request], Identity]:
    """A FastAPI dependency admitting only ``roles``; refusals by role are audited."""

    def dependency(request: Request) -> Identity:
        controller = controller_of(request)
        identity = controller.authenticate(peer_certificate(request))
        try:
            controller.authorize(identity, roles)
        except Forbidden as exc:
            target = f"{request.method} {request.url.path}"
            controller.audit_refusal(actor_of(identity), "api.call", target, exc.detail)
            raise
        return identity

    return dependency
