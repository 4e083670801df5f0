"""The first admin's certificate is short-lived, and the CLI's renewal (shared with agents)
replaces it past two thirds of its life, for the same identity."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ztos import pki, renewal
from ztos.controller import Controller, initialise_network
from ztos.directory.sqlite import SqliteStore
from ztos.enroll.identity_dir import IdentityDir
from ztos.model import Role


class ServiceClient:
    """Stands in for ``ApiClient``: sends renewals to the service layer as ``who``."""

    def __init__(self, controller: Controller, who: pki.Identity) -> None:
        self.controller, self.who, self.calls = controller, who, 0

    def request(self, method: str, path: str, json: Any = None) -> Any:
        assert (method, path) == ("POST", "/api/v1/certificates/renew")
        self.calls += 1
        return {"certificate_pem": self.controller.renew(self.who, json["csr_pem"])}


def test_first_admin_cert_is_a_week_and_renews_past_two_thirds(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "dir.db"))
    try:
        admin = IdentityDir(tmp_path / "admin")
        initialise_network(store, tmp_path / "pki", admin, "test", 24 * 3600)
        cert = admin.certificate()
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=7, minutes=2)
        controller = Controller(store, pki.CertificateAuthority.load(tmp_path / "pki"), ["https://x"])
        client = ServiceClient(controller, pki.identity_of(cert))

        early = cert.not_valid_before_utc + timedelta(days=4)
        assert renewal.renew_if_due(client, admin, early) is False  # type: ignore[arg-type]
        assert client.calls == 0
        late = cert.not_valid_before_utc + timedelta(days=5)
        assert renewal.renew_if_due(client, admin, late) is True  # type: ignore[arg-type]
        renewed = pki.identity_of(admin.certificate())
        assert (renewed.name, renewed.role) == ("admin", Role.ADMIN)
        assert renewed.serial != pki.identity_of(cert).serial
    finally:
        store.close()


def test_admin_cert_lifetime_is_an_option(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "dir.db"))
    try:
        admin = IdentityDir(tmp_path / "admin")
        initialise_network(store, tmp_path / "pki", admin, "test", 3600, admin_cert_ttl_seconds=86400)
        cert = admin.certificate()
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=1, minutes=2)
    finally:
        store.close()
