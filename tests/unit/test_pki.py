import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.errors import InvalidInput, PkiError
from ztos.keys import generate_wg_keypair
from ztos.model import Role


@pytest.fixture
def ca(tmp_path: Path) -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create(tmp_path / "pki", "test")


def test_ca_key_is_private_and_reloadable(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    key_path = tmp_path / "pki" / "ca.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert pki.CertificateAuthority.load(tmp_path / "pki").fingerprint == ca.fingerprint
    with pytest.raises(PkiError, match="refusing to overwrite"):
        pki.CertificateAuthority.create(tmp_path / "pki", "again")


def test_loose_ca_key_permissions_refused(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    (tmp_path / "pki" / "ca.key").chmod(0o644)
    with pytest.raises(PkiError, match="chmod 600"):
        pki.CertificateAuthority.load(tmp_path / "pki")


def test_node_certificate_binds_name_role_and_wireguard_key(ca: pki.CertificateAuthority) -> None:
    wg = generate_wg_keypair()
    key = pki.generate_private_key()
    cert = ca.issue_client(key.public_key(), "host1", Role.NODE, timedelta(hours=24), wg.public_key)
    identity = pki.identity_of(cert)
    assert (identity.name, identity.role, identity.wg_public_key) == ("host1", Role.NODE, wg.public_key)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(hours=24, minutes=1)
    ca.verify_issued(cert)


def test_certificate_from_another_ca_is_refused(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    other = pki.CertificateAuthority.create(tmp_path / "other", "other")
    cert = other.issue_client(pki.generate_private_key().public_key(), "x", Role.ADMIN, timedelta(hours=1))
    with pytest.raises(PkiError, match="not issued by this network's CA"):
        ca.verify_issued(cert)


def test_renewal_after_two_thirds_of_lifetime(ca: pki.CertificateAuthority) -> None:
    cert = ca.issue_client(pki.generate_private_key().public_key(), "h", Role.NODE, timedelta(hours=24))
    start = cert.not_valid_before_utc
    assert not pki.needs_renewal(cert, start + timedelta(hours=12))
    assert pki.needs_renewal(cert, start + timedelta(hours=17))


def test_csr_with_broken_signature_is_refused() -> None:
    csr = pki.make_csr(pki.generate_private_key(), "host1")
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM).decode()
    with pytest.raises(InvalidInput, match="proof of possession"):
        pki.load_csr(tampered)
    assert pki.load_csr(csr.public_bytes(Encoding.PEM).decode()).subject == csr.subject


def test_crl_lists_revoked_serials(ca: pki.CertificateAuthority) -> None:
    cert = ca.issue_client(pki.generate_private_key().public_key(), "h", Role.NODE, timedelta(hours=1))
    crl = ca.crl([(pki.serial_hex(cert), cert.not_valid_before_utc)], timedelta(hours=1))
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_blob_signatures(ca: pki.CertificateAuthority) -> None:
    signature = pki.sign_blob(ca.key, b"profile")
    assert pki.verify_blob(ca.cert, b"profile", signature)
    assert not pki.verify_blob(ca.cert, b"profil3", signature)
