"""Controller side of enrolment: issue tokens, redeem them for an identity.

Both functions run inside one directory transaction, so an enrolment either
writes the node, its certificate record, the used token and the audit event
together, or nothing at all.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ztos import addressing, keys, pki
from ztos.audit import AuditDraft
from ztos.directory import Transaction
from ztos.enroll import allocation, tokens
from ztos.errors import Conflict, InvalidInput
from ztos.model import (
    Attributes,
    CertificateRecord,
    Endpoint,
    Name,
    Network,
    Node,
    NodeStatus,
    Role,
    Tenant,
    Token,
    User,
    WgKey,
)

MAX_TOKEN_TTL = timedelta(days=30)


RESERVED_NODE_NAMES = frozenset({"ns", "ztos-api"})  # DNS names the controller owns


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_name: Name
    role: Role = Role.NODE
    tenants: list[Name] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
    ttl_seconds: int = Field(default=3600, ge=60, le=int(MAX_TOKEN_TTL.total_seconds()))
    discover_by_dns: bool = False  # profile names the DNS domain instead of controller URLs

    @field_validator("node_name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NODE_NAMES:
            raise ValueError(f"{value!r} is reserved for the network's DNS; choose another name")
        return value


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=200)
    node_name: Name
    csr_pem: str = Field(max_length=8192)
    wg_public_key: WgKey | None = None
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=16)
    listen_port: int = Field(default=51820, ge=1, le=65535)
    underlay_mtu: int = Field(default=1500, ge=1280, le=65535)


class NetworkInfo(BaseModel):
    name: str
    ula_prefix: ipaddress.IPv6Network
    ipv4_prefix: ipaddress.IPv4Network
    domain: str


class DnsCredentials(BaseModel):
    """What an enrolled host needs to publish its own DNS records (RFC 2136 + TSIG)."""

    zone: str
    server: str
    port: int
    key_name: str
    secret: str


class DnsZoneView(BaseModel):
    """The network's zone as served, for ``ztos dns records``."""

    zone: str
    server: str
    port: int
    backend: str
    records: list[str]


class EnrollResponse(BaseModel):
    certificate_pem: str
    ca_pem: str
    network: NetworkInfo
    node: Node | None = None
    dns: DnsCredentials | None = None


def network_info(network: Network) -> NetworkInfo:
    return NetworkInfo(
        name=network.name,
        ula_prefix=network.ula_prefix,
        ipv4_prefix=network.ipv4_prefix,
        domain=network.domain,
    )


def issue_token(tx: Transaction, request: TokenRequest, actor: str, now: datetime) -> tuple[Token, str]:
    """Store a new token (hashed) and return it with its one-time plaintext."""
    _check_tenants(tx, request.tenants)
    parts = tokens.new_token_parts()
    token = Token(
        id=parts.id,
        secret_sha256=tokens.hash_secret(parts.secret),
        node_name=request.node_name,
        role=request.role,
        tenants=request.tenants,
        attributes=request.attributes,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(seconds=request.ttl_seconds),
    )
    tx.create(token)
    tx.audit(AuditDraft(actor, "token.create", f"token:{token.id}", detail=_token_detail(token)))
    return token, tokens.format_token(parts)


def _check_tenants(tx: Transaction, names: list[str]) -> None:
    known = {tenant.name for tenant in tx.list(Tenant)}
    unknown = sorted(set(names) - known)
    if unknown:
        choices = ", ".join(sorted(known)) or "none yet: create one with 'ztos tenant create'"
        raise InvalidInput(f"unknown tenant {', '.join(unknown)} (tenants: {choices})", code="unknown_tenant")


def _token_detail(token: Token) -> str:
    return f"for {token.role.value} {token.node_name}, expires {token.expires_at.isoformat()}"


def redeem(
    tx: Transaction,
    ca: pki.CertificateAuthority,
    network: Network,
    request: EnrollRequest,
    now: datetime,
) -> EnrollResponse:
    """Check the token, issue the certificate, record the identity. Raises on refusal."""
    parts = tokens.parse_token(request.token)
    token = tokens.check_token(tx.get(Token, parts.id), parts, request.node_name, now)
    csr = pki.load_csr(request.csr_pem)
    _check_csr_subject(csr, request.node_name)
    ttl = timedelta(seconds=network.cert_ttl_seconds)
    node = None
    if token.role is Role.NODE:
        node = _new_node(tx, network, token, request)
        cert = ca.issue_client(csr_public_key(csr), token.node_name, token.role, ttl, node.wg_public_key)
        node.cert_serial = pki.serial_hex(cert)
        tx.put(node)
        _join_tenants(tx, node.name, token.tenants)
    else:
        cert = ca.issue_client(csr_public_key(csr), token.node_name, token.role, ttl)
        tx.put(User(name=token.node_name, roles=[token.role], attributes=token.attributes))
    tx.create(certificate_record(cert))
    token.used_at = now
    tx.put(token)
    tx.audit(
        AuditDraft(
            f"token:{token.id}",
            "enroll",
            f"{token.role.value}:{token.node_name}",
            detail=f"certificate {pki.serial_hex(cert)} until {cert.not_valid_after_utc}",
        )
    )
    return EnrollResponse(
        certificate_pem=pki.cert_to_pem(cert),
        ca_pem=pki.cert_to_pem(ca.cert),
        network=network_info(network),
        node=node,
    )


def _join_tenants(tx: Transaction, node: str, names: list[str]) -> None:
    """Attach an enrolling node to its token's tenants, on the tenants (``Tenant.nodes``,
    the one place membership is kept). A tenant deleted since the token was made is
    skipped, as its deletion would have detached the node anyway."""
    for name in names:
        tenant = tx.get(Tenant, name)
        if tenant is not None and node not in tenant.nodes:
            tx.put(tenant.model_copy(update={"nodes": sorted({*tenant.nodes, node})}))


def _check_csr_subject(csr: x509.CertificateSigningRequest, node_name: str) -> None:
    names = csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if not names or names[0].value != node_name:
        raise InvalidInput(f"CSR subject must be CN={node_name}, the name being enrolled")


def csr_public_key(
    csr: x509.CertificateSigningRequest,
) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)  # load_csr checked
    return key


def _offered_wg_key(request: EnrollRequest) -> str:
    """The host's WireGuard key, refused if it is missing or a low-order point: a
    peer with such a key shares the all-zero secret with everyone (no one holds it)."""
    if request.wg_public_key is None:
        raise InvalidInput("wg_public_key: a node enrolment must carry the host's WireGuard public key")
    try:
        return keys.check_wg_public_key(request.wg_public_key)
    except ValueError as exc:
        raise InvalidInput(f"wg_public_key: {exc}") from exc


def _new_node(tx: Transaction, network: Network, token: Token, request: EnrollRequest) -> Node:
    """The node record for a redeemed token: keyed reads only (``allocation``), so
    enrolment costs the same with ten nodes as with ten thousand."""
    wg_key = _offered_wg_key(request)
    allocation.ensure_index(tx, network.ipv4_prefix)
    existing = tx.get(Node, token.node_name)
    if existing is not None and existing.status is NodeStatus.ACTIVE:
        raise Conflict(f"node {token.node_name!r} is already enrolled; revoke or delete it first")
    if allocation.key_owner(tx, wg_key) not in (None, token.node_name):
        raise Conflict("this WireGuard public key already belongs to another node")
    allocation.claim_key(tx, wg_key, token.node_name, replacing=existing.wg_public_key if existing else None)
    return Node(
        name=token.node_name,
        role=token.role,
        wg_public_key=wg_key,
        overlay_ipv6=addressing.overlay_ipv6(network.ula_prefix, wg_key),
        overlay_ipv4=_overlay_ipv4(tx, network, token.node_name, existing),
        endpoints=request.endpoints,
        listen_port=request.listen_port,
        underlay_mtu=request.underlay_mtu,
        attributes=token.attributes,
        cert_serial="0",
    )


def _overlay_ipv4(
    tx: Transaction, network: Network, name: str, existing: Node | None
) -> ipaddress.IPv4Address:
    """A revoked node enrolling again under its name keeps its address (its lease is
    its own); any other node gets the lowest free one."""
    if existing is not None and allocation.holds_ipv4(tx, existing):
        return existing.overlay_ipv4
    return allocation.allocate_ipv4(tx, network.ipv4_prefix, name)


def certificate_record(cert: x509.Certificate) -> CertificateRecord:
    identity = pki.identity_of(cert)
    return CertificateRecord(
        serial=identity.serial,
        subject=identity.name,
        role=identity.role,
        fingerprint_sha256=pki.fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
