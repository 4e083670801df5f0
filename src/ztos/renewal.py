"""Certificate renewal, shared by agents and the CLI: short lifetimes without lock-outs.

Certificates are short-lived (hosts 24 h, the first admin at most a week) so a
leaked one is worth little; whoever holds one renews it once two thirds of its
life are gone (``pki.needs_renewal``), over mTLS with the still-valid
certificate, keeping the same TLS key (and, for hosts, WireGuard key).
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.client import ApiClient
from ztos.enroll.identity_dir import IdentityDir


def renew_if_due(client: ApiClient, identity: IdentityDir, now: datetime | None = None) -> bool:
    """Renew ``identity``'s certificate when due; True when it was renewed."""
    if not pki.needs_renewal(identity.certificate(), now):
        return False
    csr = pki.make_csr(identity.ensure_tls_key(), pki.identity_of(identity.certificate()).name)
    body = client.request(
        "POST", "/api/v1/certificates/renew", json={"csr_pem": csr.public_bytes(Encoding.PEM).decode()}
    )
    identity.store_certificate(body["certificate_pem"])
    return True
