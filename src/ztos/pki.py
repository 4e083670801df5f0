"""The ZTOS certificate authority: issuing, renewing and revoking identities.

One EC P-256 CA per network. Every node and admin identity is a short-lived
X.509 certificate (24 h by default) whose subject carries the name (CN) and
the role (OU); node certificates also carry the node's WireGuard public key
as a ``ztos:wg:<urlsafe-b64>`` SAN URI, which binds the tunnel key to the
identity. Revocation is recorded in the directory (checked on every API call)
and exported as a signed CRL. Private keys are written with mode 0600 and
never leave the machine that generated them.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ztos.errors import InvalidInput, PkiError
from ztos.model import Role, utcnow

CA_VALIDITY = timedelta(days=3650)
WG_URI_PREFIX = "ztos:wg:"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Identity:
    """Who a certificate says its holder is."""

    name: str
    role: Role
    serial: str
    wg_public_key: str | None = None


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER encoding, lowercase hex: what profiles pin."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def cert_to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def cert_from_pem(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem if isinstance(pem, bytes) else pem.encode())
    except ValueError as exc:
        raise InvalidInput(f"not a PEM certificate: {exc}") from exc


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise PkiError(f"{path}: unsupported key type {type(key).__name__}")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically with mode 0600 from the first byte on (in a 0700
    directory when this creates it)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def make_csr(key: PrivateKey, name: str) -> x509.CertificateSigningRequest:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algorithm)


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a CSR and check it is signed by the key it carries (proof of possession)."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise InvalidInput(f"CSR is not valid PEM: {exc}") from exc
    public_key = csr.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise InvalidInput(f"CSR key curve {public_key.curve.name} not allowed; use P-256")
    elif not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise InvalidInput("CSR key must be EC P-256 or Ed25519")
    if not csr.is_signature_valid:
        raise InvalidInput("CSR signature does not match its public key (proof of possession failed)")
    return csr


def identity_of(cert: x509.Certificate) -> Identity:
    try:
        name = _first_attr(cert.subject, NameOID.COMMON_NAME)
        role = Role(_first_attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME))
    except ValueError as exc:
        raise PkiError(f"certificate subject is not a ZTOS identity: {exc}") from exc
    return Identity(name=name, role=role, serial=serial_hex(cert), wg_public_key=_wg_key_of(cert))


def _first_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        raise ValueError(f"missing {oid._name}")
    return str(attrs[0].value)


def _wg_key_of(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(WG_URI_PREFIX):
            return base64.b64encode(base64.urlsafe_b64decode(uri[len(WG_URI_PREFIX) :])).decode()
    return None


def needs_renewal(cert: x509.Certificate, now: datetime | None = None) -> bool:
    """Renew once two thirds of the lifetime have passed."""
    now = now or utcnow()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return now >= cert.not_valid_after_utc - lifetime / 3


class CertificateAuthority:
    """The CA of one network, loaded from (or created in) a PKI directory."""

    def __init__(self, key: PrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.fingerprint = fingerprint(cert)

    @classmethod
    def create(cls, pki_dir: Path, network_name: str) -> CertificateAuthority:
        if (pki_dir / "ca.key").exists():
            raise PkiError(f"{pki_dir / 'ca.key'} already exists; refusing to overwrite a CA")
        key = generate_private_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ZTOS"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"ZTOS CA {network_name}"),
            ]
        )
        now = utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(pki_dir / "ca.key", key_to_pem(key))
        (pki_dir / "ca.crt").write_text(cert_to_pem(cert))
        return cls(key, cert)

    @classmethod
    def load(cls, pki_dir: Path) -> CertificateAuthority:
        key_path = pki_dir / "ca.key"
        if not key_path.exists():
            raise PkiError(f"no CA in {pki_dir}: run 'ztos init' first")
        if key_path.stat().st_mode & 0o077:
            raise PkiError(f"{key_path} is readable by others; run: chmod 600 {key_path}")
        return cls(load_private_key(key_path), cert_from_pem((pki_dir / "ca.crt").read_bytes()))

    def issue_client(
        self,
        public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
        name: str,
        role: Role,
        ttl: timedelta,
        wg_public_key: str | None = None,
    ) -> x509.Certificate:
        uris = [x509.UniformResourceIdentifier(f"ztos:{role.value}:{name}")]
        if wg_public_key:
            raw = base64.b64decode(wg_public_key)
            uris.append(
                x509.UniformResourceIdentifier(WG_URI_PREFIX + base64.urlsafe_b64encode(raw).decode())
            )
        return self._issue(public_key, name, role, ttl, list(uris), ExtendedKeyUsageOID.CLIENT_AUTH)

    def issue_server(
        self, public_key: ec.EllipticCurvePublicKey, hostnames: list[str], ttl: timedelta
    ) -> x509.Certificate:
        names: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(public_key, "controller", Role.ADMIN, ttl, names, ExtendedKeyUsageOID.SERVER_AUTH)

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
        name: str,
        role: Role,
        ttl: timedelta,
        alt_names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> x509.Certificate:
        now = utcnow()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ZTOS"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(min(now + ttl, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        )
        return builder.sign(self.key, hashes.SHA256())

    def verify_issued(self, cert: x509.Certificate) -> None:
        """Raise ``PkiError`` unless this CA signed ``cert`` and it is currently valid."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PkiError("certificate was not issued by this network's CA") from exc
        now = utcnow()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise PkiError(f"certificate expired or not yet valid (valid until {cert.not_valid_after_utc})")

    def crl(
        self, revoked: list[tuple[str, datetime]], next_update: timedelta
    ) -> x509.CertificateRevocationList:
        now = utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + next_update)
        )
        for serial, revoked_at in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(revoked_at)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256())


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def sign_blob(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_blob(cert: x509.Certificate, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` was made by the key of ``cert``."""
    public_key = cert.public_key()
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True
