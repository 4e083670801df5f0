"""Need to know: which peers and which identities one host's enforcement needs.

A host compiles the policy into its own tables (``ztos.policy.compile``):
``inet ztos-host`` admits traffic *to the host itself*, ``bridge
ztos-t-<tenant>`` filters traffic of its *local workloads*. A clause's sets
therefore matter on host X only when one side holds X's identities (X as a
target, or one of X's workloads on either side); then X reads the other
side's members in the same tenant (or, for the host table, the source
nodes). ``Reach`` resolves every clause once for the whole directory; per
host, ``needs`` only looks up X's few local identities in each clause, so
building a thousand maps costs a thousand cheap lookups, not a thousand
resolutions.

What is resolved here ignores time windows (the agent opens and closes them
itself, so their members must already be on the host) but honours attribute
conditions: an identity failing them is in nobody's set, so nobody needs it,
and a posture change reaches hosts as a new map. The trimmed snapshot keeps,
for each identity it carries, only the attribute keys that conditions read
about it (on a side whose selector names it), so that X's compiler judges
every identity it carries exactly as it would with the whole directory (an
``absent`` test must see a present attribute): each of X's sets holds the
whole directory's set restricted to what X carries.

Peers follow the policy in both directions: X needs the hosts of the other
side of every clause one of its identities passes, and since the relation
is symmetric, those hosts list X in turn. Only pairs with a path count: a
node with nodes (host traffic over the mesh), a workload with workloads of
its own tenant (whose hosts share that tenant with X anyway); ``"*"``
naming every node as a source of a workload rule adds no peer.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from ztos.policy.model import AttrCondition, Policy, Rule, Selector
from ztos.policy.resolve import Members, Resolver, attr_conditions, clauses
from ztos.policy.snapshot import Ident, NodeInfo, Snapshot, UserInfo, WorkloadInfo

_EMPTY: Members = frozenset()


@dataclass(frozen=True)
class Side:
    """One side of a clause, resolved against the whole directory."""

    members: Members  # named by the selector (conditions not applied): whose attributes matter
    passing: Members  # also passing the side's attribute conditions: whose addresses land in sets
    nodes: Members  # the passing node identities (host tables read these)
    by_tenant: Mapping[str, Members]  # the passing workloads per tenant (tenant tables read these)
    tenant_hosts: Mapping[str, frozenset[str]]  # per tenant, the nodes its passing workloads run on
    keys: tuple[str, ...]  # the attributes its conditions read (``device.x``, ``user.y``, ``workload.z``)
    rule: Rule | None = field(default=None, compare=False)  # whose conditions (to judge one identity again)
    which: str = "src"


@dataclass(frozen=True)
class HostNeeds:
    """What one host needs: the peers policy adds, and the identities its compiler reads."""

    policy_peers: frozenset[str]
    snapshot: Snapshot


class Reach:
    """Every clause of ``policy`` resolved once against the whole ``snapshot``."""

    def __init__(self, policy: Policy, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        timeless = _without_windows(policy)
        self.resolver = Resolver(timeless, snapshot)
        sides: dict[str, Side] = {}
        self.clauses: list[tuple[Side, Side]] = []
        for clause in clauses(timeless):
            src = self._side(sides, clause.rule, "src", clause.rule.source)
            dst = self._side(sides, clause.rule, "dst", clause.dst)
            self.clauses.append((src, dst))
        self.conditioned = [side for side in sides.values() if side.keys]
        self.local: dict[str, list[Ident]] = defaultdict(list)
        for workload in snapshot.workloads.values():
            self.local[workload.node].append(("workload", workload.name))
        self.groups_named = _groups_named(policy)

    def _side(self, cache: dict[str, Side], rule: Rule, side: str, selector: Selector) -> Side:
        conditions = attr_conditions(rule, side)
        key = side + selector.model_dump_json() + "".join(c.model_dump_json() for c in conditions)
        if key not in cache:
            cache[key] = self._resolve(rule, side, selector, conditions)
        return cache[key]

    def _resolve(self, rule: Rule, side: str, selector: Selector, conditions: list[AttrCondition]) -> Side:
        members = self.resolver.members(selector)
        passing = frozenset(i for i in members if self.resolver.conditions_hold(rule, side, i))
        workloads = self.snapshot.workloads
        by_tenant: dict[str, set[Ident]] = defaultdict(set)
        hosts: dict[str, set[str]] = defaultdict(set)
        for kind, name in passing:
            if kind == "workload":
                by_tenant[workloads[name].tenant].add((kind, name))
                hosts[workloads[name].tenant].add(workloads[name].node)
        return Side(
            members=members,
            passing=passing,
            nodes=frozenset(i for i in passing if i[0] == "node"),
            by_tenant={t: frozenset(found) for t, found in by_tenant.items()},
            tenant_hosts={t: frozenset(found) for t, found in hosts.items()},
            keys=tuple(sorted({c.attr for c in conditions})),
            rule=rule,
            which=side,
        )

    def with_node(self, info: NodeInfo) -> Reach | None:
        """This resolution with node ``info.name``'s attributes replaced, judging again only
        that node and its workloads (a posture flap at 10,000 hosts must not resolve every
        clause again). None when more than attributes moved (its addresses, role or tags
        name it in other selectors, or it is new): then resolve the whole directory."""
        old = self.snapshot.nodes.get(info.name)
        if old is None or (old.addresses, old.role, old.tags) != (info.addresses, info.role, info.tags):
            return None
        snapshot = replace(self.snapshot, nodes={**self.snapshot.nodes, info.name: info})
        clone = copy.copy(self)
        clone.snapshot = snapshot
        clone.resolver = copy.copy(self.resolver)
        clone.resolver.snapshot = snapshot
        judged = [("node", info.name), *self.local.get(info.name, ())]
        again: dict[int, Side] = {}
        for side in {id(s): s for pair in self.clauses for s in pair}.values():
            again[id(side)] = clone._rejudged(side, judged) if side.keys else side
        clone.clauses = [(again[id(src)], again[id(dst)]) for src, dst in self.clauses]
        clone.conditioned = [again[id(side)] for side in self.conditioned]
        return clone

    def _rejudged(self, side: Side, judged: list[Ident]) -> Side:
        assert side.rule is not None
        named = [i for i in judged if i in side.members]
        passing = (side.passing - set(judged)) | {
            i for i in named if self.resolver.conditions_hold(side.rule, side.which, i)
        }
        if passing == side.passing:
            return side
        workloads = self.snapshot.workloads
        tenants = {workloads[name].tenant for kind, name in judged if kind == "workload"}
        by_tenant = dict(side.by_tenant)
        hosts = dict(side.tenant_hosts)
        for tenant in tenants:
            found = frozenset(i for i in passing if i[0] == "workload" and workloads[i[1]].tenant == tenant)
            by_tenant[tenant] = found
            hosts[tenant] = frozenset(workloads[name].node for _, name in found)
        return replace(
            side,
            passing=frozenset(passing),
            nodes=frozenset(i for i in passing if i[0] == "node"),
            by_tenant=by_tenant,
            tenant_hosts=hosts,
        )

    def needs(self, node: str, also: Collection[str] = ()) -> HostNeeds:
        """Host ``node``'s policy peers and trimmed snapshot; ``also`` are nodes it must
        carry anyway (its other peers: the host table admits VXLAN and BGP from them)."""
        local = [("node", node), *self.local.get(node, ())]
        tenant_of = {name: self.snapshot.workloads[name].tenant for kind, name in local if kind == "workload"}
        peers: set[str] = set()
        wanted: set[Ident] = set(local)
        for src, dst in self.clauses:
            for mine, other in ((src, dst), (dst, src)):
                passing = [i for i in local if i in mine.passing]
                if passing:
                    peers |= _peers_of(passing, other, tenant_of)
                    wanted |= _read_on_host(passing, mine is dst, other, tenant_of)
        peers.discard(node)
        wanted |= {("node", n) for n in (*peers, *also) if n in self.snapshot.nodes}
        return HostNeeds(frozenset(peers), self._trimmed(wanted))

    def _trimmed(self, wanted: set[Ident]) -> Snapshot:
        snapshot = self.snapshot
        workloads = [snapshot.workloads[n] for k, n in wanted if k == "workload"]
        node_names = {n for k, n in wanted if k == "node"} | {w.node for w in workloads}
        node_names &= snapshot.nodes.keys()
        owners = {w.owner for w in workloads if w.owner and w.owner in snapshot.users}
        carried: set[Ident] = {("workload", w.name) for w in workloads}
        carried |= {("node", n) for n in node_names}
        keys = _attribute_keys(snapshot, carried, self.conditioned)
        return Snapshot.build(
            nodes=(_node(snapshot.nodes[n], keys.get(("node", n), ())) for n in sorted(node_names)),
            users=(
                _user(snapshot.users[u], keys.get(("user", u), ()), self.groups_named) for u in sorted(owners)
            ),
            workloads=(_workload(w, keys.get(("workload", w.name), ())) for w in workloads),
            groups=_groups(snapshot, self.groups_named, owners, {w.name for w in workloads} | node_names),
        )


def _peers_of(passing: list[Ident], other: Side, tenant_of: Mapping[str, str]) -> set[str]:
    """The hosts this host exchanges traffic with under the clause: nodes with nodes over
    the mesh, workloads with workloads of their tenant (no other pair has a path)."""
    found: set[str] = set()
    for kind, name in passing:
        if kind == "node":
            found.update(n for _, n in other.nodes)
        else:
            found |= other.tenant_hosts.get(tenant_of[name], frozenset())
    return found


def _read_on_host(
    passing: list[Ident], as_target: bool, other: Side, tenant_of: Mapping[str, str]
) -> Members:
    """The other side's identities whose addresses land in this host's sets: source nodes
    when the host itself is a target, same-tenant workloads for its workloads."""
    found: set[Ident] = set()
    for kind, name in passing:
        if kind == "node":
            found |= other.nodes if as_target else _EMPTY
        else:
            found |= other.by_tenant.get(tenant_of[name], _EMPTY)
    return frozenset(found)


def _attribute_keys(
    snapshot: Snapshot, wanted: set[Ident], sides: Iterable[Side]
) -> dict[tuple[str, str], set[str]]:
    """Per record, the attribute keys some condition reads about a carried identity."""
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    for side in sides:
        for kind, name in wanted & side.members:
            for attr in side.keys:
                record = _holder(snapshot, (kind, name), attr)
                if record is not None:
                    keys[record].add(attr.partition(".")[2])
    return keys


def _holder(snapshot: Snapshot, ident: Ident, attr: str) -> tuple[str, str] | None:
    """Whose record an attribute of ``ident`` is read from (``tenant`` is no attribute)."""
    kind, name = ident
    scope = attr.partition(".")[0]
    if scope == "device":
        return ("node", snapshot.workloads[name].node if kind == "workload" else name)
    if scope == "user" and kind == "workload":
        owner = snapshot.workloads[name].owner
        return ("user", owner) if owner else None
    if scope == "workload" and kind == "workload":
        return ("workload", name)
    return None


def _only(attributes: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    return {k: attributes[k] for k in sorted(keys) if k in attributes}


def _node(info: NodeInfo, keys: Iterable[str]) -> NodeInfo:
    return NodeInfo(info.name, info.addresses, info.role, info.tags, _only(info.attributes, keys))


def _workload(info: WorkloadInfo, keys: Iterable[str]) -> WorkloadInfo:
    return WorkloadInfo(
        info.name, info.tenant, info.node, info.addresses, info.owner, info.tags, _only(info.attributes, keys)
    )


def _user(info: UserInfo, keys: Iterable[str], groups_named: frozenset[str]) -> UserInfo:
    groups = tuple(g for g in info.groups if g in groups_named)
    return UserInfo(info.name, groups, info.roles, _only(info.attributes, keys))


def _groups(
    snapshot: Snapshot, named: frozenset[str], users: set[str], others: set[str]
) -> dict[str, list[str]]:
    """Directory groups the policy names, holding only carried members."""
    found = {}
    for name in sorted(named & snapshot.groups.keys()):
        members = sorted(m for m in snapshot.groups[name] if m in users or m in others)
        if members:
            found[name] = members
    return found


def _groups_named(policy: Policy) -> frozenset[str]:
    """Directory groups the policy can reach: in selectors and in role definitions."""
    names = {g for rule in policy.rules for s in (rule.source, rule.to) for g in s.groups}
    names |= {g for role in policy.roles.values() for g in role.groups}
    return frozenset(names)


def _without_windows(policy: Policy) -> Policy:
    """The same policy with every time window open: membership, not the clock."""
    rules = tuple(
        rule.model_copy(update={"when": tuple(c for c in rule.when if isinstance(c, AttrCondition))})
        for rule in policy.rules
    )
    return policy.model_copy(update={"rules": rules})
