"""An identity on disk: a TLS key and certificate, the pinned CA, and for
hosts the WireGuard key and what enrolment returned.

The same layout serves an admin's ``$ZTOS_HOME`` and an agent's state
directory. Private keys are created here, mode 0600, and never sent anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ztos import pki
from ztos.enroll.server import DnsCredentials, EnrollResponse
from ztos.keys import generate_wg_keypair, wg_public_key


@dataclass(frozen=True)
class IdentityDir:
    root: Path

    @property
    def tls_key(self) -> Path:
        return self.root / "tls.key"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls.crt"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def wg_key(self) -> Path:
        return self.root / "wg.key"

    @property
    def enrolment(self) -> Path:
        return self.root / "enrolment.json"

    @property
    def tsig_key(self) -> Path:
        return self.root / "tsig.json"

    def is_enrolled(self) -> bool:
        return self.tls_cert.exists() and self.tls_key.exists() and self.ca_cert.exists()

    def certificate(self) -> x509.Certificate:
        return pki.cert_from_pem(self.tls_cert.read_bytes())

    def ensure_tls_key(self) -> pki.PrivateKey:
        """Load the TLS key, creating it on first use (re-running enrolment reuses it)."""
        if not self.tls_key.exists():
            pki.write_private(self.tls_key, pki.key_to_pem(pki.generate_private_key()))
        return pki.load_private_key(self.tls_key)

    def ensure_wg_public_key(self) -> str:
        if not self.wg_key.exists():
            pki.write_private(self.wg_key, generate_wg_keypair().private_key.encode() + b"\n")
        return wg_public_key(self.wg_key.read_text().strip())

    def store_certificate(self, certificate_pem: str, ca_pem: str | None = None) -> None:
        tmp = self.tls_cert.with_name("tls.crt.tmp")
        tmp.write_text(certificate_pem)
        tmp.replace(self.tls_cert)
        if ca_pem is not None:
            self.ca_cert.write_text(ca_pem)

    def store_enrolment(self, response: EnrollResponse) -> None:
        summary = response.model_dump(mode="json", exclude={"certificate_pem", "ca_pem", "dns"})
        self.store_certificate(response.certificate_pem, response.ca_pem)
        if response.dns is not None:
            pki.write_private(self.tsig_key, response.dns.model_dump_json().encode())
        tmp = self.enrolment.with_name("enrolment.json.tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(self.enrolment)  # readers never see half a file

    def load_enrolment(self) -> EnrollResponse | None:
        if not self.enrolment.exists():
            return None
        data = json.loads(self.enrolment.read_text())
        return EnrollResponse(certificate_pem="", ca_pem="", dns=self.dns_credentials(), **data)

    def dns_credentials(self) -> DnsCredentials | None:
        if not self.tsig_key.exists():
            return None
        return DnsCredentials.model_validate_json(self.tsig_key.read_text())
