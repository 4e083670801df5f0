"""The network's policy: versioned in the directory, validated before it is stored.

``apply`` validates the whole file (every problem with file, line and value)
and stores a new revision only when it is valid, so a bad file never
replaces the running policy. ``rollback`` stores an old revision's text as a
new revision. ``snapshot`` turns the directory into the identities a policy
is evaluated against; agents compile the same policy and snapshot into
nftables on every host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ztos.audit import AuditDraft
from ztos.directory import Store, Transaction
from ztos.errors import InvalidInput, NotFound
from ztos.model import Group, Network, Node, PolicyHead, PolicyRevision, Tenant, User, Workload, utcnow
from ztos.policy import (
    KnownNames,
    Policy,
    Snapshot,
    decide,
    diff_policies,
    load_policy,
    policy_digest,
    port_of,
)

ACTIVE = "active"


class PolicyText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=2_000_000)
    source: str = Field(default="api", max_length=200)
    comment: str = Field(default="", max_length=500)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rev: int = Field(ge=1)


class PolicyTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    src: str = Field(alias="from", max_length=100)
    dst: str = Field(alias="to", max_length=100)
    port: str = Field(max_length=20, description="tcp/5432, udp/53 or icmp")


class PolicyView(BaseModel):
    rev: int
    digest: str
    source: str
    created_by: str
    created_at: datetime
    comment: str
    text: str


class PolicyState(BaseModel):
    """Whether the network is open, closed by default, or under a policy revision."""

    mode: Literal["open", "default-deny", "policy"]
    rev: int | None
    detail: str


def state(store: Store) -> PolicyState:
    """What hosts enforce right now, in words an operator can act on."""
    current = active(store)
    networks = store.list(Network)
    if current is not None:
        rev = int(current.rev)
        return PolicyState(
            mode="policy", rev=rev, detail=f"policy revision {rev} in force: only what its rules allow passes"
        )
    if networks and networks[0].default_deny:
        return PolicyState(
            mode="default-deny",
            rev=None,
            detail="no policy applied yet and the network is default deny: hosts admit only ZTOS's own "
            "traffic and see only the hosts they share a tenant with",
        )
    return PolicyState(
        mode="open",
        rev=None,
        detail="no policy applied yet: the network is open, every host reaches every other "
        "(run 'ztos policy apply FILE', or 'ztos network configure --default-deny' to start closed)",
    )


class PolicyChanges(BaseModel):
    current_rev: int | None
    changes: list[str]


class PolicyDecision(BaseModel):
    allowed: bool
    rule: str | None
    reason: str
    rev: int


def rev_key(rev: int) -> str:
    return f"{rev:08d}"


def view(revision: PolicyRevision) -> PolicyView:
    return PolicyView(
        rev=int(revision.rev),
        digest=revision.digest,
        source=revision.source,
        created_by=revision.created_by,
        created_at=revision.created_at,
        comment=revision.comment,
        text=revision.text,
    )


def known_names(store: Store) -> KnownNames:
    groups = {g.name for g in store.list(Group)} | {grp for u in store.list(User) for grp in u.groups}
    return KnownNames(tenants=frozenset(t.name for t in store.list(Tenant)), groups=frozenset(groups))


def validate(store: Store, body: PolicyText) -> Policy:
    return load_policy(body.text, body.source, known_names(store))


def active(store: Store) -> PolicyRevision | None:
    head = store.get(PolicyHead, ACTIVE)
    return None if head is None else store.get(PolicyRevision, head.rev)


def _store_revision(tx: Transaction, actor: str, body: PolicyText, policy: Policy) -> PolicyRevision:
    revisions = tx.list(PolicyRevision)
    rev = rev_key(max((int(r.rev) for r in revisions), default=0) + 1)
    revision = PolicyRevision(
        rev=rev,
        text=body.text,
        source=body.source,
        digest=policy_digest(policy),
        created_by=actor,
        comment=body.comment,
    )
    tx.create(revision)
    tx.put(PolicyHead(name=ACTIVE, rev=rev))
    return revision


def apply(store: Store, actor: str, body: PolicyText) -> PolicyView:
    """Validate, then store as the new active revision (nothing changes if invalid)."""
    policy = validate(store, body)
    current = active(store)
    changes = diff_policies(_parsed(current), policy) if current else ["first policy"]
    with store.transaction() as tx:
        revision = _store_revision(tx, actor, body, policy)
        detail = f"rev {int(revision.rev)} {revision.digest[:12]} from {body.source}: " + "; ".join(
            changes[:10]
        )
        tx.audit(AuditDraft(actor, "policy.apply", "policy", detail=detail[:1000]))
    return view(revision)


def _parsed(revision: PolicyRevision) -> Policy:
    return load_policy(revision.text, f"revision {int(revision.rev)}")


def diff(store: Store, body: PolicyText) -> PolicyChanges:
    new = validate(store, body)
    current = active(store)
    changes = diff_policies(_parsed(current), new) if current else ["first policy: every rule is new"]
    return PolicyChanges(current_rev=int(current.rev) if current else None, changes=changes)


def rollback(store: Store, actor: str, request: RollbackRequest) -> PolicyView:
    old = store.get(PolicyRevision, rev_key(request.rev))
    if old is None:
        raise NotFound(f"no policy revision {request.rev}: see 'ztos policy history'")
    body = PolicyText(
        text=old.text, source=f"rollback to {request.rev}", comment=f"rollback to {request.rev}"
    )
    return apply(store, actor, body)


def history(store: Store) -> list[PolicyView]:
    return [view(r) for r in sorted(store.list(PolicyRevision), key=lambda r: r.rev)]


def snapshot(store: Store) -> Snapshot:
    return Snapshot.from_records(store.list(Node), store.list(User), store.list(Workload), store.list(Group))


def test(store: Store, request: PolicyTestRequest, now: datetime | None = None) -> PolicyDecision:
    current = active(store)
    if current is None:
        raise NotFound("no policy applied yet: run 'ztos policy apply FILE' first")
    spec = port_of(request.port)
    if spec.low != spec.high or spec.proto == "any":
        raise InvalidInput(
            f"--port {request.port!r}: test one protocol and port, e.g. tcp/5432, udp/53 or icmp"
        )
    port = spec.low
    decision = decide(
        _parsed(current), snapshot(store), request.src, request.dst, spec.proto, port, now or utcnow()
    )
    return PolicyDecision(
        allowed=decision.allowed, rule=decision.rule, reason=decision.reason, rev=int(current.rev)
    )


@dataclass(frozen=True)
class PolicyService:
    """The policy part of the controller's service layer (``Controller.policy``): what
    routes call, so no route reaches the store itself."""

    store: Store

    def current(self) -> PolicyView:
        """The policy in force; NotFound, saying open or default deny, when there is none."""
        revision = active(self.store)
        if revision is None:
            raise NotFound(state(self.store).detail)
        return view(revision)

    def state(self) -> PolicyState:
        return state(self.store)

    def apply(self, actor: str, body: PolicyText) -> PolicyView:
        return apply(self.store, actor, body)

    def history(self) -> list[PolicyView]:
        return history(self.store)

    def diff(self, body: PolicyText) -> PolicyChanges:
        return diff(self.store, body)

    def rollback(self, actor: str, request: RollbackRequest) -> PolicyView:
        return rollback(self.store, actor, request)

    def test(self, request: PolicyTestRequest) -> PolicyDecision:
        return test(self.store, request)
