"""Domain types of ZTOS, validated at the edge with pydantic v2.

Every record kind the directory stores is a ``Record`` subclass naming its
``kind`` (the table / LDAP organisational unit) and its ``key_field`` (the
primary key / LDAP RDN). Validation errors name the field that is wrong, so an
API body or a profile file with a bad value is refused with a precise message.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ztos import keys, naming
from ztos.naming import ATTR_KEY_RE

MAX_VNI = 2**24 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _check_wg_key(value: str) -> str:
    # Format only, so a record stored before low-order keys were refused still loads
    # (and can be revoked); requests use ``keys.check_wg_public_key``.
    keys.decode_wg_public_key(value)
    return value


def _check_attrs(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not naming.is_attr_key(key):
            raise ValueError(f"attribute name {key!r} must match {ATTR_KEY_RE.pattern}")
    return value


def _check_endpoint(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"endpoint {value!r} must be ADDRESS:PORT or [IPv6]:PORT")
    ipaddress.ip_address(host.strip("[]"))
    return value


Name = Annotated[str, AfterValidator(naming.check_name)]
NetnsName = Annotated[str, AfterValidator(naming.check_netns)]
TokenId = Annotated[str, AfterValidator(naming.check_token_id)]
WgKey = Annotated[str, AfterValidator(_check_wg_key)]
Attributes = Annotated[dict[str, str], AfterValidator(_check_attrs)]
Endpoint = Annotated[str, AfterValidator(_check_endpoint)]


class Role(StrEnum):
    """What a certificate holder may do. ``node`` is a host's agent."""

    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    NODE = "node"


class NodeStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Record(BaseModel):
    """A directory entry: one row (SQLite) or one entry (LDAP)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    kind: ClassVar[str]
    key_field: ClassVar[str] = "name"

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))


MAX_ASN = 2**32 - 1


class BgpPeer(BaseModel):
    """An extra BGP peer (route reflector, external router) beside the mesh."""

    model_config = ConfigDict(extra="forbid")
    address: ipaddress.IPv6Address | ipaddress.IPv4Address
    asn: int = Field(ge=1, le=MAX_ASN)


class BgpSettings(BaseModel):
    """BGP EVPN for the whole network; absent means the embedded flood-list mode."""

    model_config = ConfigDict(extra="forbid")
    asn: int = Field(ge=1, le=MAX_ASN)
    evpn: bool = True
    peers: list[BgpPeer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_peers(self) -> BgpSettings:
        seen = [str(peer.address) for peer in self.peers]
        duplicates = sorted({a for a in seen if seen.count(a) > 1})
        if duplicates:
            raise ValueError(f"duplicate BGP peer {', '.join(duplicates)}: each peer may appear once")
        return self


class Network(Record):
    """The one ZTOS network a directory describes."""

    kind = "network"
    name: Name = "default"
    ula_prefix: ipaddress.IPv6Network
    ipv4_prefix: ipaddress.IPv4Network
    domain: str = "ztos.internal"
    cert_ttl_seconds: int = Field(default=24 * 3600, ge=300, le=90 * 24 * 3600)
    created_at: datetime = Field(default_factory=utcnow)
    bgp: BgpSettings | None = None
    default_deny: bool = False  # before the first policy: closed (only tenant peers, nothing admitted)


class Node(Record):
    kind = "node"
    name: Name
    role: Role = Role.NODE
    wg_public_key: WgKey
    overlay_ipv6: ipaddress.IPv6Address
    overlay_ipv4: ipaddress.IPv4Address
    endpoints: list[Endpoint] = Field(default_factory=list)  # self-claimed by the host
    observed_endpoint: Endpoint | None = None  # where the controller saw its last report from
    listen_port: int = Field(default=51820, ge=1, le=65535)
    underlay_mtu: int = Field(default=1500, ge=1280, le=65535)
    attributes: Attributes = Field(default_factory=dict)
    status: NodeStatus = NodeStatus.ACTIVE
    cert_serial: str
    enrolled_at: datetime = Field(default_factory=utcnow)


class NodeSeen(Record):
    """When the controller last heard from a node's agent (any authenticated call).

    Its own kind, not a field of ``Node``: a node record ships to peers and every
    write of it wakes their watches, while "last seen" is for people only (the
    watch hides this kind). Written at most once per ``LAST_SEEN_INTERVAL``.
    """

    kind = "nodeseen"
    name: Name
    at: datetime


class NodeView(Node):
    """A node as the API shows it: the record plus what other records say about it.

    ``tenants`` is derived from ``Tenant.nodes`` (the one place membership is kept)
    and ``last_seen`` from ``NodeSeen``; neither is stored on the node, and a view
    is never stored (its extra fields would not load as a ``Node``).
    """

    tenants: list[Name] = Field(default_factory=list)
    last_seen: datetime | None = None


class User(Record):
    kind = "user"
    name: Name
    email: str | None = None
    groups: list[Name] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)


class Device(Record):
    kind = "device"
    name: Name
    owner: Name | None = None
    attributes: Attributes = Field(default_factory=dict)


class Group(Record):
    kind = "group"
    name: Name
    members: list[Name] = Field(default_factory=list)
    description: str = ""


class RoleDef(Record):
    """A named role and the permissions it grants (RBAC)."""

    kind = "role"
    name: Name
    permissions: list[str] = Field(default_factory=list)


class Tenant(Record):
    """An isolated L2/L3 segment: one VNI, one IPv6 /64 of the network, optional IPv4.

    IPv4 subnets of different tenants may overlap; the anycast gateway is the
    first address of each prefix on every node that serves the tenant.
    """

    kind = "tenant"
    name: Name
    vni: int = Field(ge=1, le=MAX_VNI)
    ipv6_prefix: ipaddress.IPv6Network
    ipv4_prefix: ipaddress.IPv4Network | None = None
    nodes: list[Name] = Field(default_factory=list)


class Workload(Record):
    """A workload (container, VM, namespace) attached to a tenant on one node.

    ``netns`` names an existing network namespace to plug in (a container's);
    empty means ZTOS creates one (the lab's stand-in for a container).
    """

    kind = "workload"
    name: Name
    tenant: Name
    node: Name
    mac: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    ipv6: ipaddress.IPv6Interface
    ipv4: ipaddress.IPv4Interface | None = None
    netns: NetnsName | None = None
    owner: Name | None = None  # the user who runs it: group membership for policy
    tags: list[Name] = Field(default_factory=list)


class Token(Record):
    """A bootstrap token. Only the SHA-256 of its secret is ever stored."""

    kind = "token"
    key_field = "id"
    id: TokenId
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    node_name: Name
    role: Role = Role.NODE
    tenants: list[Name] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None  # an admin killed it (leaked) before use or expiry


class TsigKey(Record):
    """A TSIG key of the network's DNS zone: one per host, one for the controller.

    The secret is a shared HMAC key (the DNS server must hold it); it lives in
    the directory like the rest of the controller's secrets and is never sent
    on the change feed.
    """

    kind = "tsigkey"
    key_field = "key_name"
    key_name: str = Field(pattern=r"^([A-Za-z0-9_-]{1,63}\.)+$", max_length=254)  # labels, never '..'
    secret: str = Field(min_length=16, max_length=200)
    host: Name | None = None  # None: the controller's key


class DnsZoneRecord(Record):
    """The embedded DNS server's zone, as master-file lines (persisted on every change)."""

    kind = "dnszone"
    key_field = "origin"
    origin: str
    records: list[str] = Field(default_factory=list)


class PolicyRevision(Record):
    """One applied version of the network's policy (kept for diff and rollback)."""

    kind = "policyrev"
    key_field = "rev"
    rev: str = Field(pattern=r"^[0-9]{8}$")  # zero-padded so keys sort by number
    text: str = Field(max_length=2_000_000)
    source: str = "api"
    digest: str
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    comment: str = ""


class PolicyHead(Record):
    """Which revision is in force (key ``active``); absent until the first apply."""

    kind = "policyhead"
    name: Name = "active"
    rev: str = Field(pattern=r"^[0-9]{8}$")


class CertificateRecord(Record):
    kind = "certificate"
    key_field = "serial"
    serial: str = Field(pattern=r"^[0-9a-f]{1,40}$")
    subject: str
    role: Role
    fingerprint_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


class AuditEvent(BaseModel):
    """One tamper-evident audit log entry; ``hash`` chains it to the one before."""

    model_config = ConfigDict(extra="forbid")
    seq: int
    at: datetime
    actor: str
    action: str
    target: str = ""
    outcome: str = "ok"
    detail: str = ""
    prev_hash: str
    hash: str


RECORD_KINDS: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        Network,
        Node,
        NodeSeen,
        User,
        Device,
        Group,
        RoleDef,
        Tenant,
        Workload,
        Token,
        CertificateRecord,
        TsigKey,
        DnsZoneRecord,
        PolicyRevision,
        PolicyHead,
    )
}


def record_from_data(kind: str, data: dict[str, Any]) -> Record:
    return RECORD_KINDS[kind].model_validate(data)
