"""The controller's service layer: one owner for writes that span subsystems.

The API is a thin HTTP skin over ``Controller``; every method here validates,
writes the directory in one transaction and records an audit event, so the
same behaviour is reachable from tests without HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ztos import addressing, netmap, pki
from ztos.audit import AuditDraft, verify_chain
from ztos.controller import policies, posture
from ztos.controller import status as agent_status
from ztos.controller import tenants as tenant_ops
from ztos.controller.nodemaps import NodeMaps
from ztos.controller.nodemaps import node_map as node_map_of
from ztos.controller.refusals import RefusalLimiter
from ztos.controller.sessions import EndedSessions, LoginCodes
from ztos.controller.status import AgentStatus, HostSecurity, NetworkStatus, StatusBoard
from ztos.directory import Change, ChangeSignal, Store, Transaction
from ztos.enroll import allocation
from ztos.enroll import server as enroll_server
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.profile import Profile, format_validation_error
from ztos.enroll.server import DnsCredentials, DnsZoneView
from ztos.errors import (
    Conflict,
    DirectoryError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    ZtosError,
)
from ztos.model import (
    AuditEvent,
    CertificateRecord,
    Endpoint,
    Network,
    Node,
    NodeSeen,
    NodeStatus,
    NodeView,
    Role,
    Tenant,
    Token,
    User,
    utcnow,
)

Clock = Callable[[], datetime]
HOST_PREFIX = "posture."  # what a host reports about itself
ADMIN_PREFIX = "admin."  # what an admin decided about a host; never written by a host
CONTROLLER_KEYS = frozenset({"posture.stale"})  # the posture watchdog's, set and cleared by the controller
MAX_POSTURE_KEYS = 64
MAX_ATTRIBUTES = 128
MAX_VALUE_BYTES = 1024
T = TypeVar("T")
log = logging.getLogger("ztos.controller")
DEFAULT_ADMIN_CERT_TTL = 7 * 24 * 3600  # the first admin's certificate; renewed by the CLI
# How stale a stored "last seen" may get before an agent's call rewrites it. A live
# agent calls at least every watch timeout (25 s), so without a bound every call would
# be a directory write (fsynced): 10,000 hosts would cost 400+ writes a second. At 60 s
# it is at most 10,000 / 60 ~ 170 small writes a second, and "last seen" is for people
# (is the host around?), where a minute is precise enough; freshness that enforcement
# depends on is the posture watchdog's, not this.
LAST_SEEN_INTERVAL = timedelta(seconds=60)
IDEMPOTENCY_WINDOW = timedelta(minutes=10)  # how long a write's Idempotency-Key is remembered


class TokenCreated(BaseModel):
    token: str
    id: str
    node_name: str
    role: Role
    expires_at: datetime
    profile: Profile


class CertificateStatus(BaseModel):
    serial: str
    subject: str
    role: Role
    not_after: datetime
    revoked: bool


class RefusalAlert(BaseModel):
    """An identity refused again and again recently (a revoked host still trying, a guesser)."""

    identity: str
    reason: str
    count: int


class SecurityStatus(BaseModel):
    network: str
    ca_fingerprint: str
    ca_not_after: datetime
    nodes_active: int
    nodes_revoked: int
    certificates: list[CertificateStatus]
    audit_chain_ok: bool
    audit_events: int
    repeated_refusals: list[RefusalAlert] = Field(default_factory=list)


class TokenInfo(BaseModel):
    """A bootstrap token as listed: never its secret (nor the secret's hash)."""

    id: str
    node_name: str
    role: Role
    created_by: str
    expires_at: datetime
    used: bool
    revoked: bool


class UserInfo(BaseModel):
    """A person and their certificates."""

    name: str
    roles: list[Role]
    revoked: bool
    certificates: list[CertificateStatus]


class SecurityOverview(SecurityStatus):
    """The security status plus, per host, key and certificate hygiene and posture."""

    hosts: list[HostSecurity]


class NodeReport(BaseModel):
    """What an agent reports about itself: where peers can reach it."""

    model_config = ConfigDict(extra="forbid")
    endpoints: list[Endpoint] | None = Field(default=None, max_length=16)
    listen_port: int | None = Field(default=None, ge=1, le=65535)
    underlay_mtu: int | None = Field(default=None, ge=1280, le=65535)


class DnsHooks(Protocol):
    """What the controller asks of the network's DNS (``ztos.controller.dns.DnsService``)."""

    def credentials_for(self, host: str) -> DnsCredentials: ...

    def host_removed(self, host: str) -> None: ...

    def records(self) -> DnsZoneView: ...

    def location(self) -> tuple[str, str]:
        """(zone, "[server]:port") for profiles."""
        ...


@dataclass
class Controller:
    store: Store
    ca: pki.CertificateAuthority
    controller_urls: list[str]
    clock: Clock = utcnow
    status_board: StatusBoard = field(default_factory=StatusBoard)
    dns: DnsHooks | None = None
    posture_timeout: float = posture.DEFAULT_TIMEOUT
    refusals: RefusalLimiter = field(default_factory=RefusalLimiter)
    node_maps: NodeMaps = field(init=False)
    policy: policies.PolicyService = field(init=False)
    tenancy: tenant_ops.TenantService = field(init=False)
    login_codes: LoginCodes = field(init=False)
    ended_sessions: EndedSessions = field(init=False)

    def __post_init__(self) -> None:
        self.node_maps = NodeMaps(self.store)
        self.policy = policies.PolicyService(self.store)
        self.tenancy = tenant_ops.TenantService(self.store)
        self.login_codes = LoginCodes(self.store)
        self.ended_sessions = EndedSessions(self.store)

    @classmethod
    def open(cls, store: Store, pki_dir: Path, controller_urls: list[str]) -> Controller:
        return cls(store, pki.CertificateAuthority.load(pki_dir), controller_urls)

    def network(self) -> Network:
        networks = self.store.list(Network)  # exactly one per directory
        if not networks:
            raise NotFound("the directory has no network: run 'ztos init' first")
        return networks[0]

    # -- identities --------------------------------------------------------

    def authenticate(self, cert: x509.Certificate | None) -> pki.Identity:
        """Map a TLS client certificate to an identity, checking CA and revocation."""
        if cert is None:
            raise Unauthenticated("a client certificate issued by this network's CA is required")
        self.ca.verify_issued(cert)
        identity = pki.identity_of(cert)
        record = self.store.get(CertificateRecord, identity.serial)
        if record is None:
            raise Unauthenticated(f"certificate {identity.serial} is unknown to this directory")
        if record.revoked_at is not None:
            raise Unauthenticated(
                f"certificate {identity.serial} ({identity.name}) was revoked at "
                f"{record.revoked_at.isoformat()}",
                code="certificate_revoked",
            )
        return identity

    @staticmethod
    def authorize(identity: pki.Identity, allowed: frozenset[Role]) -> None:
        if identity.role not in allowed:
            wanted = " or ".join(sorted(role.value for role in allowed))
            raise Forbidden(f"{identity.role.value} {identity.name!r} may not do this; needs {wanted}")

    # -- tokens and enrolment ------------------------------------------------

    def create_token(self, actor: str, request: enroll_server.TokenRequest) -> TokenCreated:
        with self.store.transaction() as tx:
            token, secret = enroll_server.issue_token(tx, request, actor, self.clock())
        profile = self._signed_profile(token, secret, request.discover_by_dns)
        return TokenCreated(
            token=secret,
            id=token.id,
            node_name=token.node_name,
            role=token.role,
            expires_at=token.expires_at,
            profile=profile,
        )

    def _signed_profile(self, token: Token, secret: str, by_dns: bool = False) -> Profile:
        located = self.dns.location() if self.dns is not None else None
        if by_dns and located is None:
            raise InvalidInput("this controller serves no DNS zone: profiles must name controller URLs")
        profile = Profile(
            network=self.network().name,
            controllers=[] if by_dns else self.controller_urls,
            domain=located[0] if located else None,
            resolver=located[1] if located else None,
            ca_fingerprint=self.ca.fingerprint,
            token=secret,
            node_name=token.node_name,
            role=token.role,
            tenants=token.tenants,
            attributes=token.attributes,
        )
        signature = pki.sign_blob(self.ca.key, profile.signed_bytes())
        return profile.model_copy(update={"signature": _b64(signature)})

    def enroll(self, request: enroll_server.EnrollRequest, source: str) -> enroll_server.EnrollResponse:
        network = self.network()
        try:
            with self.store.transaction() as tx:
                response = enroll_server.redeem(tx, self.ca, network, request, self.clock())
        except ZtosError as exc:
            self.audit_refusal(
                f"enrollee:{request.node_name}@{source}",
                "enroll",
                f"node:{request.node_name}",
                f"{exc.code}: {exc.detail}",
                reason=exc.code,
            )
            raise
        if self.dns is not None and response.node is not None:
            response.dns = self._dns_call(lambda hooks: hooks.credentials_for(request.node_name))
        return response

    def list_tokens(self) -> list[TokenInfo]:
        return [_token_info(token) for token in sorted(self.store.list(Token), key=lambda t: t.created_at)]

    def revoke_token(self, actor: str, token_id: str) -> TokenInfo:
        """Kill a token (leaked, no longer needed) so it can never enrol."""
        with self.store.transaction() as tx:
            token = tx.get(Token, token_id)
            if token is None:
                raise NotFound(f"no token with id {token_id!r}")
            if token.revoked_at is None:
                token.revoked_at = self.clock()
                tx.put(token)
                tx.audit(AuditDraft(actor, "token.revoke", f"token:{token_id}", detail=token.node_name))
        return _token_info(token)

    # -- people -------------------------------------------------------------

    def list_users(self) -> list[UserInfo]:
        records = self.store.list(CertificateRecord)
        return [_user_info(user, records) for user in sorted(self.store.list(User), key=lambda u: u.name)]

    def get_user(self, name: str) -> UserInfo:
        user = self.store.get(User, name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return _user_info(user, self.store.list(CertificateRecord))

    def revoke_user(self, actor: str, name: str, reason: str) -> UserInfo:
        """Offboard a person: revoke every certificate of theirs (directory and CRL),
        which also ends their browser sessions at once."""
        now = self.clock()
        with self.store.transaction() as tx:
            user = tx.get(User, name)
            if user is None:
                raise NotFound(f"no user named {name!r}")
            for record in tx.list(CertificateRecord):
                if record.subject == name and record.role is not Role.NODE and record.revoked_at is None:
                    record.revoked_at, record.revoke_reason = now, reason
                    tx.put(record)
            tx.audit(AuditDraft(actor, "user.revoke", f"user:{name}", detail=reason))
        return self.get_user(name)

    def _dns_call(self, action: Callable[[DnsHooks], T]) -> T | None:
        """DNS is a convenience on top of the mesh: its failure is logged, never fatal."""
        assert self.dns is not None
        try:
            return action(self.dns)
        except ZtosError as exc:
            log.warning("DNS: %s", exc.detail)
            return None

    def renew(self, identity: pki.Identity, csr_pem: str) -> str:
        """Issue a fresh certificate for the same identity (and WireGuard key)."""
        csr = pki.load_csr(csr_pem)
        key = enroll_server.csr_public_key(csr)
        ttl = timedelta(seconds=self.network().cert_ttl_seconds)
        cert = self.ca.issue_client(key, identity.name, identity.role, ttl, identity.wg_public_key)
        with self.store.transaction() as tx:
            tx.create(enroll_server.certificate_record(cert))
            node = tx.get(Node, identity.name) if identity.role is Role.NODE else None
            if node is not None:
                node.cert_serial = pki.serial_hex(cert)
                tx.put(node)
            tx.audit(AuditDraft(actor_of(identity), "certificate.renew", pki.serial_hex(cert)))
        return pki.cert_to_pem(cert)

    # -- nodes --------------------------------------------------------------

    def list_nodes(self) -> list[Node]:
        return sorted(self.store.list(Node), key=lambda node: node.name)

    def get_node(self, name: str) -> Node:
        node = self.store.get(Node, name)
        if node is None:
            raise NotFound(f"no node named {name!r}")
        return node

    def node_views(self) -> list[NodeView]:
        """Every node as people see it: with its tenants and when it was last seen."""
        seen = {record.name: record.at for record in self.store.list(NodeSeen)}
        served = memberships(self.store.list(Tenant))
        return [as_view(n, served.get(n.name, []), seen.get(n.name)) for n in self.list_nodes()]

    def node_view(self, name: str) -> NodeView:
        node = self.get_node(name)
        seen = self.store.get(NodeSeen, name)
        served = memberships(self.store.list(Tenant)).get(name, [])
        return as_view(node, served, seen.at if seen else None)

    def first_delivery(self, actor: str, method: str, path: str, key: str) -> bool:
        """Whether a write carrying ``Idempotency-Key: key`` arrives for the first time.

        Remembered in the directory for ``IDEMPOTENCY_WINDOW``, per caller and
        route, so a client that resends a write after its controller died (it
        cannot know whether the write was applied) reaches another replica and
        is told it already arrived, instead of applying it twice. The claim is
        made before the write runs: a write that failed after it cannot be
        replayed under the same key, only sent again under a new one.
        """
        digest = hashlib.sha256(f"{actor}\n{method} {path}\n{key}".encode()).hexdigest()
        now = self.clock().timestamp()
        with self.store.transaction() as tx:
            return tx.claim_once("idempotency", digest, now, IDEMPOTENCY_WINDOW.total_seconds())

    def note_seen(self, name: str) -> None:
        """Remember that node ``name``'s agent called, in the directory (so every replica
        sees it), rewriting it only once it is ``LAST_SEEN_INTERVAL`` old. A failure is
        logged, never the agent's: "last seen" must not cost the call it records."""
        now = self.clock()
        try:
            if not _seen_is_stale(self.store.get(NodeSeen, name), now):
                return
            with self.store.transaction() as tx:  # re-checked inside: replicas race
                if _seen_is_stale(tx.get(NodeSeen, name), now) and tx.get(Node, name) is not None:
                    tx.put(NodeSeen(name=name, at=now))
        except DirectoryError as exc:
            log.warning("last seen of %s not recorded: %s", name, exc.detail)

    def set_node_attributes(self, actor: str, name: str, changes: dict[str, str | None]) -> Node:
        """An admin's attribute changes. ``posture.*`` is what the host reports about itself
        and is refused here: an admin's verdict is an ``admin.*`` key, which no host report
        can write, so the host it judges can never overrule it."""
        for key in changes:
            if key.startswith(HOST_PREFIX):
                verdict = ADMIN_PREFIX + key.removeprefix(HOST_PREFIX)
                raise InvalidInput(
                    f"attribute {key!r} is reported by the host itself; an admin's verdict is "
                    f"{verdict!r} (and a policy reads it as device.{verdict})",
                    code="host_reported_attribute",
                )
        return self._write_attributes(actor, name, changes, "node.attributes")

    def _write_attributes(self, actor: str, name: str, changes: dict[str, str | None], action: str) -> Node:
        with self.store.transaction() as tx:
            return self._merge_attributes(tx, actor, name, changes, action)

    @staticmethod
    def _merge_attributes(
        tx: Transaction, actor: str, name: str, changes: dict[str, str | None], action: str
    ) -> Node:
        """Merge attribute changes (``None`` removes); written only when something differs,
        because every write re-evaluates policy on every host."""
        node = tx.get(Node, name)
        if node is None:
            raise NotFound(f"no node named {name!r}")
        attributes = {**node.attributes, **{k: v for k, v in changes.items() if v is not None}}
        for key in [k for k, v in changes.items() if v is None]:
            attributes.pop(key, None)
        if attributes == node.attributes:
            return node
        check_attribute_size(attributes, node.attributes)
        try:
            node = Node.model_validate({**node.model_dump(), "attributes": attributes})
        except ValidationError as exc:
            raise InvalidInput(format_validation_error("attributes", exc)) from exc
        tx.put(node)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        tx.audit(AuditDraft(actor, action, f"node:{name}", detail=shown))
        return node

    def report_posture(self, name: str, report: dict[str, str | None]) -> Node:
        """A host's own facts, stored as ``posture.*``. A key naming an admin decision
        (``admin.*``) or the watchdog's ``posture.stale`` is refused (403, the key named):
        a report only ever writes the host's own namespace. A report is the freshness
        signal, so it clears ``posture.stale`` and stores the report time every replica
        reads (``ztos.controller.posture``)."""
        changes: dict[str, str | None] = {}
        for key, value in report.items():
            stored = HOST_PREFIX + key.removeprefix(HOST_PREFIX)
            if key.startswith(ADMIN_PREFIX) or stored in CONTROLLER_KEYS:
                raise Forbidden(
                    f"a host reports only its own posture; {key!r} is not the host's to set",
                    code="attribute_not_host_owned",
                )
            changes[stored] = value
        changes["posture.stale"] = None
        now = self._now()
        with self.store.transaction() as tx:
            node = self._merge_attributes(tx, f"node:{name}", name, changes, "node.posture")
            tx.put_state(posture.POSTURE_SCOPE, name, {"at": now}, now)
        return node

    def expire_posture(self) -> list[str]:
        """Hosts whose posture reports stopped are marked non-compliant (once, by the
        replica that gets there first). The host clears this only by reporting again,
        which is what freshness means. Returns the hosts this call marked."""
        now = self._now()
        candidates = [
            name
            for name, entry in self.store.list_state(posture.POSTURE_SCOPE, now).items()
            if posture.is_stale(float(entry["at"]), now, self.posture_timeout)
        ]
        return [name for name in candidates if self._mark_stale(name, now)]

    def _mark_stale(self, name: str, now: float) -> bool:
        """Re-checked inside the transaction: a report or another replica may have come first."""
        with self.store.transaction() as tx:
            stored = posture.report_time(tx.get_state(posture.POSTURE_SCOPE, name, now))
            if stored is None or not posture.is_stale(stored, now, self.posture_timeout):
                return False
            tx.delete_state(posture.POSTURE_SCOPE, name)
            if tx.get(Node, name) is None:
                return False
            stale: dict[str, str | None] = {"posture.compliant": "false", "posture.stale": "true"}
            self._merge_attributes(tx, "controller", name, stale, "node.attributes")
        return True

    def revoke_node(self, actor: str, name: str, reason: str) -> Node:
        now = self.clock()
        with self.store.transaction() as tx:
            node = tx.get(Node, name)
            if node is None:
                raise NotFound(f"no node named {name!r}")
            node.status = NodeStatus.REVOKED
            tx.put(node)
            for record in tx.list(CertificateRecord):
                if record.subject == name and record.role is Role.NODE and record.revoked_at is None:
                    record.revoked_at, record.revoke_reason = now, reason
                    tx.put(record)
            tx.audit(AuditDraft(actor, "node.revoke", f"node:{name}", detail=reason))
        if self.dns is not None:
            self._dns_call(lambda hooks: hooks.host_removed(name))
        return node

    def delete_node(self, actor: str, name: str) -> None:
        """Forget a node. Its certificates are revoked first so it cannot come back."""
        self.revoke_node(actor, name, "deleted")
        prefix = self.network().ipv4_prefix
        with self.store.transaction() as tx:
            node = tx.get(Node, name)
            if node is not None:
                allocation.release(tx, prefix, node)  # its address goes back to the pool
            tx.delete(Node, name)
            tenant_ops.forget_node(tx, name)
            tx.delete_state(posture.POSTURE_SCOPE, name)
            tx.delete_state(agent_status.STATUS_SCOPE, name)
            if tx.get(NodeSeen, name) is not None:
                tx.delete(NodeSeen, name)
            tx.audit(AuditDraft(actor, "node.delete", f"node:{name}"))

    def node_map(self, identity: pki.Identity) -> netmap.NodeMap:
        """What this node needs of the mesh and the policy (``nodemaps``: need to know)."""
        return self.node_maps.build(identity.name)

    def node_map_update(self, identity: pki.Identity, held: netmap.HeldMap) -> netmap.MapUpdate:
        """The node's map as a delta against the one it holds, when this replica can tell
        what moved since (``NodeMaps`` remembers recent steps), else the whole map."""
        directory = self.node_maps.directory()
        current = node_map_of(directory, identity.name)
        moved = None if held.since is None else self.node_maps.moved_between(held.since, directory.revision)
        return netmap.update_for(current, directory.revision, held.digest, held.rest, moved)

    def dns_records(self) -> DnsZoneView:
        if self.dns is None:
            raise NotFound("this controller serves no DNS zone: start it with --dns-listen ADDRESS:PORT")
        return self.dns.records()

    def network_status(self) -> NetworkStatus:
        reports = agent_status.read_reports(self.store.list_state(agent_status.STATUS_SCOPE, self._now()))
        network, current = self.network(), policies.active(self.store)
        status = agent_status.network_status(network.bgp, self.store.list(Tenant), reports)
        rev = None if current is None else int(current.rev)
        return status.model_copy(update={"default_deny": network.default_deny, "policy_rev": rev})

    def put_agent_status(self, name: str, report: AgentStatus) -> None:
        """Keep a node's latest status report where every replica reads it (one entry per
        node, overwritten). An unchanged report is rewritten only once its stored copy is
        ``STATUS_REFRESH`` old, so a steady network costs no write per reconcile."""
        now = self._now()
        stored = self.store.get_state(agent_status.STATUS_SCOPE, name, now)
        if agent_status.needs_write(stored, report, now):
            with self.store.transaction() as tx:
                tx.put_state(agent_status.STATUS_SCOPE, name, agent_status.entry(report, now), now)

    def _now(self) -> float:
        return self.clock().timestamp()

    def report(self, identity: pki.Identity, report: NodeReport, source: str | None = None) -> Node:
        """Record what a node says about its underlay, and where the controller saw the
        report come from (``source``, the TLS peer address): the endpoints are the host's
        claim, the observed one is the controller's. Writes only when it changed,
        because every write wakes every watcher."""
        with self.store.transaction() as tx:
            node = tx.get(Node, identity.name)
            if node is None:
                raise NotFound(f"node {identity.name!r} is not in the directory")
            changes = report.model_dump(exclude_none=True)
            port = changes.get("listen_port", node.listen_port)
            changes["observed_endpoint"] = observed_endpoint(source, port)
            if any(getattr(node, field) != value for field, value in changes.items()):
                node = node.model_copy(update=changes)
                Node.model_validate(node.model_dump())
                tx.put(node)
        return node

    # -- security and monitoring ----------------------------------------------

    def revoked_serials(self) -> list[tuple[str, datetime]]:
        return [
            (record.serial, record.revoked_at)
            for record in self.store.list(CertificateRecord)
            if record.revoked_at is not None
        ]

    def crl_pem(self) -> str:
        crl = self.ca.crl(self.revoked_serials(), timedelta(hours=1))
        return crl.public_bytes(Encoding.PEM).decode()

    def security_status(self) -> SecurityStatus:
        nodes = self.store.list(Node)
        events = self.audit_log(0, 1_000_000)
        now = self.clock()
        certificates = [
            _certificate_status(r) for r in self.store.list(CertificateRecord) if r.not_after > now
        ]
        return SecurityStatus(
            network=self.network().name,
            ca_fingerprint=self.ca.fingerprint,
            ca_not_after=self.ca.cert.not_valid_after_utc,
            nodes_active=sum(n.status is NodeStatus.ACTIVE for n in nodes),
            nodes_revoked=sum(n.status is NodeStatus.REVOKED for n in nodes),
            certificates=sorted(certificates, key=lambda c: (c.subject, c.not_after)),
            audit_chain_ok=verify_chain(events) is None,
            audit_events=len(events),
            repeated_refusals=[RefusalAlert(**vars(r)) for r in self.refusals.repeated()],
        )

    def certificate(self, serial: str) -> CertificateRecord | None:
        return self.store.get(CertificateRecord, serial)

    def certificates(self) -> list[CertificateRecord]:
        return self.store.list(CertificateRecord)

    def audit_log(self, after_seq: int, limit: int) -> list[AuditEvent]:
        return self.store.audit_events(after_seq, limit)

    def changes(self, since_rev: int, limit: int = 1000) -> list[Change]:
        return self.store.changes(since_rev, limit)

    def change_signal(self) -> ChangeSignal:
        """What watchers sleep on between reads of ``changes`` (closed on shutdown)."""
        return self.store.change_signal()

    def audit(self, actor: str, action: str, target: str, outcome: str, detail: str) -> None:
        """Record an event that is no write of its own (a browser session begun, a refusal)."""
        with self.store.transaction() as tx:
            tx.audit(AuditDraft(actor, action, target, outcome, detail))

    def audit_refusal(self, actor: str, action: str, target: str, detail: str, reason: str = "") -> None:
        """Audit a refusal, at most once per (actor, reason) per window: a looping client
        cannot flood the log, and the next record says how many were suppressed."""
        suppressed = self.refusals.admit(actor, reason or detail)
        if suppressed is None:
            return
        if suppressed:
            detail += f" (and {suppressed} more refusals suppressed since the last record)"
        self.audit(actor, action, target, "refused", detail)


def check_attribute_size(attributes: dict[str, str], before: dict[str, str]) -> None:
    """A node's record ships to every host on every change: bound what it can grow to.
    A change that does not grow an over-full record (a removal) is always allowed."""
    posture = sum(key.startswith(HOST_PREFIX) for key in attributes)
    grew = posture > sum(key.startswith(HOST_PREFIX) for key in before) or len(attributes) > len(before)
    if grew and (posture > MAX_POSTURE_KEYS or len(attributes) > MAX_ATTRIBUTES):
        raise InvalidInput(
            f"a node holds at most {MAX_POSTURE_KEYS} posture.* and {MAX_ATTRIBUTES} attributes in all; "
            f"this change would leave {posture} and {len(attributes)}: remove some (a null value removes)",
            code="too_many_attributes",
        )
    for key, value in attributes.items():
        if value != before.get(key) and len(value.encode()) > MAX_VALUE_BYTES:
            raise InvalidInput(
                f"attribute {key!r} is {len(value.encode())} bytes; at most {MAX_VALUE_BYTES}",
                code="too_many_attributes",
            )


def memberships(tenants: list[Tenant]) -> dict[str, list[str]]:
    """Node name -> the tenants that list it (``Tenant.nodes``), sorted."""
    served: dict[str, list[str]] = {}
    for tenant in sorted(tenants, key=lambda t: t.name):
        for name in tenant.nodes:
            served.setdefault(name, []).append(tenant.name)
    return served


def as_view(node: Node, tenants: list[str], last_seen: datetime | None) -> NodeView:
    return NodeView.model_validate({**node.model_dump(), "tenants": tenants, "last_seen": last_seen})


def _seen_is_stale(seen: NodeSeen | None, now: datetime) -> bool:
    return seen is None or now - seen.at >= LAST_SEEN_INTERVAL


def observed_endpoint(source: str | None, port: int) -> str | None:
    """``source:port`` when ``source`` is an address peers could use (not loopback,
    link-local or unspecified), else None."""
    try:
        address = ipaddress.ip_address(source or "")
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
        return None
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _token_info(token: Token) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        node_name=token.node_name,
        role=token.role,
        created_by=token.created_by,
        expires_at=token.expires_at,
        used=token.used_at is not None,
        revoked=token.revoked_at is not None,
    )


def _certificate_status(r: CertificateRecord) -> CertificateStatus:
    return CertificateStatus(
        serial=r.serial,
        subject=r.subject,
        role=r.role,
        not_after=r.not_after,
        revoked=r.revoked_at is not None,
    )


def _user_info(user: User, records: list[CertificateRecord]) -> UserInfo:
    mine = [_certificate_status(r) for r in records if r.subject == user.name and r.role is not Role.NODE]
    return UserInfo(
        name=user.name,
        roles=user.roles,
        revoked=bool(mine) and all(c.revoked for c in mine),
        certificates=sorted(mine, key=lambda c: c.not_after),
    )


def actor_of(identity: pki.Identity) -> str:
    return f"{identity.role.value}:{identity.name}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def initialise_network(
    store: Store,
    pki_dir: Path,
    admin: IdentityDir,
    network_name: str,
    cert_ttl_seconds: int,
    admin_name: str = "admin",
    admin_cert_ttl_seconds: int = DEFAULT_ADMIN_CERT_TTL,
) -> Network:
    """Create a network: CA, random prefixes, and the first admin identity.

    The first admin's certificate is short-lived (a week by default, not a year):
    the CLI renews it past two thirds of its life, so only an admin who stays away
    longer must be re-issued one, and a leaked copy stops working soon."""
    if store.list(Network):
        raise Conflict("this directory already holds a network; refusing to initialise it again")
    ca = pki.CertificateAuthority.create(pki_dir, network_name)
    network = Network(
        name=network_name,
        ula_prefix=addressing.random_ula_prefix(),
        ipv4_prefix=addressing.random_ipv4_prefix(),
        cert_ttl_seconds=cert_ttl_seconds,
    )
    key = admin.ensure_tls_key()
    admin_ttl = timedelta(seconds=admin_cert_ttl_seconds)
    cert = ca.issue_client(key.public_key(), admin_name, Role.ADMIN, admin_ttl)
    with store.transaction() as tx:
        tx.create(network)
        tx.create(enroll_server.certificate_record(cert))
        tx.put(User(name=admin_name, roles=[Role.ADMIN]))
        tx.audit(
            AuditDraft(
                "cli:init",
                "network.init",
                f"network:{network_name}",
                detail=str(network.ula_prefix),
            )
        )
    admin.store_certificate(pki.cert_to_pem(cert), pki.cert_to_pem(ca.cert))
    return network
