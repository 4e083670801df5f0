"""Node maps on a need-to-know basis: which peers and identities each host receives.

Three regimes, by the network's policy state:

* **open** (no policy applied, ``default_deny`` off): every active node is a
  peer and no policy bundle is sent; hosts enforce nothing beyond the base
  table, as a fresh network always did.
* **default deny** (no policy applied, ``ztos network configure
  --default-deny``): peers are the nodes sharing a tenant, and the bundle is
  the empty policy (revision 0), so each host's ``ztos-host`` and tenant
  tables drop everything but ZTOS's own traffic.
* **policy**: peers are the nodes sharing a tenant plus those a rule lets this
  host or its workloads reach or be reached by; the bundle's snapshot holds
  only what this host's compiler reads (``ztos.policy.needs``).

The policy is resolved against the whole directory once per directory
revision, then each map is a cheap per-host lookup. ``NodeMaps`` keeps one
``Directory`` per process and moves it forward with the change feed (only
the records that changed are read, and only their peer entries rebuilt), and
it records, for each step, the hosts whose map the step can change
(``ztos.controller.audience``): those hosts, and only they, are woken.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ztos import netmap
from ztos.controller import policies
from ztos.controller.audience import EVERYONE, NOBODY, Audience, affected, endpoint_neighbours
from ztos.directory import Change, Store
from ztos.errors import NotFound
from ztos.model import (
    Group,
    Network,
    Node,
    NodeStatus,
    PolicyHead,
    PolicyRevision,
    Tenant,
    User,
    Workload,
    record_from_data,
)
from ztos.policy import KnownNames, Policy, Snapshot, load_policy
from ztos.policy.needs import HostNeeds, Reach
from ztos.policy.snapshot import node_info

log = logging.getLogger(__name__)

DEFAULT_DENY_REV = 0  # the bundle revision of the empty policy a default-deny network enforces
DEFAULT_DENY_TEXT = "version: 1\n"


@dataclass(frozen=True)
class Enforced:
    """The policy hosts enforce: a stored revision, or the empty default-deny one."""

    rev: int
    text: str
    policy: Policy


@dataclass(frozen=True)
class Directory:
    """What map builds read, taken from the store at one ``revision``.

    Records are kept by key so a change replaces one entry; ``peer`` memoises each
    node's peer entry (what every other host receives about it), so building a
    thousand maps builds each peer entry once.
    """

    revision: int
    network: Network
    nodes: Mapping[str, Node]
    tenants: Mapping[str, Tenant]
    workloads: Mapping[str, Workload]
    users: Mapping[str, User]
    groups: Mapping[str, Group]
    current: PolicyRevision | None
    enforced: Enforced | None  # None: the network is open
    reach: Reach | None
    owners: netmap.EndpointOwners
    active: Mapping[str, Node]
    _peers: dict[str, netmap.MapPeer] = field(default_factory=dict, compare=False, repr=False)

    def peer(self, name: str) -> netmap.MapPeer:
        found = self._peers.get(name)
        if found is None:
            found = self._peers[name] = netmap.peer_of(self.active[name], self.owners)
        return found

    def needs(self, name: str) -> tuple[frozenset[str], HostNeeds] | None:
        """Under a policy: the peers node ``name`` needs (its tenants' nodes and those its
        rules pair it with) and what its compiler reads; None while the network is open."""
        if self.reach is None:
            return None
        shared = netmap.tenant_peers(self.tenants.values(), name)
        needs = self.reach.needs(name, also=shared)
        return shared | needs.policy_peers, needs

    def peers_of(self, name: str) -> frozenset[str]:
        """The active nodes whose map lists ``name`` as a peer (peers are symmetric)."""
        if name not in self.active:
            return frozenset()
        needed = self.needs(name)
        if needed is None:
            return frozenset(self.active.keys() - {name})
        return needed[0] & self.active.keys()


def enforced(
    network: Network, current: PolicyRevision | None, known: KnownNames | None = None
) -> Enforced | None:
    """The policy in force, the empty one under default deny, or None (open)."""
    if current is not None:
        rev = int(current.rev)
        return Enforced(rev, current.text, load_policy(current.text, f"policy revision {rev}", known))
    if network.default_deny:
        return Enforced(DEFAULT_DENY_REV, DEFAULT_DENY_TEXT, Policy())
    return None


def read_directory(store: Store) -> Directory:
    """The whole directory, read record by record (at start and after a gap in the feed)."""
    revision = store.revision()
    networks = store.list(Network)
    if not networks:
        raise NotFound("the directory has no network: run 'ztos init' first")
    return directory_of(
        networks[0],
        store.list(Node),
        store.list(Tenant),
        store.list(Workload),
        store.list(User),
        store.list(Group),
        policies.active(store),
        revision,
    )


def directory_of(
    network: Network,
    nodes: Iterable[Node],
    tenants: Iterable[Tenant],
    workloads: Iterable[Workload],
    users: Iterable[User],
    groups: Iterable[Group],
    current: PolicyRevision | None,
    revision: int = 0,
) -> Directory:
    """The records, and the policy in force resolved against them (None while open)."""
    return _resolved(
        revision,
        network,
        {n.name: n for n in nodes},
        {t.name: t for t in tenants},
        {w.name: w for w in workloads},
        {u.name: u for u in users},
        {g.name: g for g in groups},
        current,
    )


def _resolved(
    revision: int,
    network: Network,
    nodes: Mapping[str, Node],
    tenants: Mapping[str, Tenant],
    workloads: Mapping[str, Workload],
    users: Mapping[str, User],
    groups: Mapping[str, Group],
    current: PolicyRevision | None,
) -> Directory:
    policy = _enforced_for(network, current, users, groups)
    active = {name: n for name, n in nodes.items() if n.status is NodeStatus.ACTIVE}
    return Directory(
        revision,
        network,
        nodes,
        tenants,
        workloads,
        users,
        groups,
        current,
        policy,
        _reach(policy, nodes, users, workloads, groups),
        netmap.EndpointOwners(active.values()),
        active,
    )


def _enforced_for(
    network: Network, current: PolicyRevision | None, users: Mapping[str, User], groups: Mapping[str, Group]
) -> Enforced | None:
    named = set(groups) | {name for u in users.values() for name in u.groups}
    return enforced(network, current, KnownNames(groups=frozenset(named)))


def _reach(
    policy: Enforced | None,
    nodes: Mapping[str, Node],
    users: Mapping[str, User],
    workloads: Mapping[str, Workload],
    groups: Mapping[str, Group],
) -> Reach | None:
    if policy is None:
        return None
    snapshot = Snapshot.from_records(
        list(nodes.values()), list(users.values()), list(workloads.values()), list(groups.values())
    )
    return Reach(policy.policy, snapshot)


MAP_KINDS = frozenset({"network", "node", "tenant", "workload", "user", "group", "policyhead"})
"""The record kinds node maps are built from; a change to any other kind moves no map."""

RevisionReader = Callable[[str], PolicyRevision | None]
"""Reads a stored policy revision by key (revisions never change once written)."""


def advanced(directory: Directory, changes: Sequence[Change], read_revision: RevisionReader) -> Directory:
    """``directory`` with ``changes`` applied: the records they carry replace or remove
    the ones held. Only what the changed records feed is computed again (a node's new
    attributes are judged alone; the policy is resolved again only when more moved), and
    peer entries are kept for every node whose entry cannot have changed."""
    d = directory
    revision = changes[-1].rev if changes else d.revision
    relevant = [c for c in changes if c.kind in MAP_KINDS]
    if not relevant:
        return replace(d, revision=revision)
    tables = Tables.of(d)
    network, current = d.network, d.current
    for change in relevant:
        if change.kind == "network" and change.data is not None:
            network = Network.model_validate(change.data)
        elif change.kind == "policyhead":
            current = (
                None if change.data is None else read_revision(PolicyHead.model_validate(change.data).rev)
            )
        else:
            tables.apply(change)
    kinds = {c.kind for c in relevant}
    moved = {c.key for c in relevant if c.kind == "node"}
    policy = d.enforced
    if kinds & {"network", "policyhead", "user", "group"}:
        policy = _enforced_for(network, current, tables.users, tables.groups)
    reach = d.reach
    if policy is None:
        reach = None
    elif policy is not d.enforced or kinds & {"workload", "user", "group"}:
        reach = _reach(policy, tables.nodes, tables.users, tables.workloads, tables.groups)
    elif moved:
        reach = _reach_with_nodes(d, tables.nodes, moved) or _reach(
            policy, tables.nodes, tables.users, tables.workloads, tables.groups
        )
    active, owners = _mesh(d, tables.nodes, moved)
    after = Directory(
        revision,
        network,
        tables.nodes,
        tables.tenants,
        tables.workloads,
        tables.users,
        tables.groups,
        current,
        policy,
        reach,
        owners,
        active,
    )
    stale = moved | endpoint_neighbours(d, after, moved)
    after._peers.update((name, peer) for name, peer in d._peers.items() if name not in stale)
    return after


def _reach_with_nodes(d: Directory, nodes: Mapping[str, Node], moved: Iterable[str]) -> Reach | None:
    """``d``'s resolution with the moved nodes' attributes judged again, one by one; None
    when one of them moved more than attributes (joined, left, was revoked, retagged)."""
    reach = d.reach
    for name in moved:
        node = nodes.get(name)
        if reach is None or node is None or node.status is not NodeStatus.ACTIVE:
            return None
        reach = reach.with_node(node_info(node))
    return reach


def _mesh(
    d: Directory, nodes: Mapping[str, Node], moved: set[str]
) -> tuple[Mapping[str, Node], netmap.EndpointOwners]:
    """The active nodes and who owns which address, rebuilt only when the moved nodes'
    standing (active or not) or address claims changed."""
    if not moved:
        return d.active, d.owners
    before = [d.nodes.get(name) for name in moved]
    after = [nodes.get(name) for name in moved]
    if any(a is None or b is None or a.status is not b.status for a, b in zip(before, after, strict=True)):
        active = {name: n for name, n in nodes.items() if n.status is NodeStatus.ACTIVE}
        return active, netmap.EndpointOwners(active.values())
    active = {**d.active, **{n.name: n for n in after if n is not None and n.name in d.active}}
    claims_moved = any(
        a is not None
        and b is not None
        and (a.endpoints, a.observed_endpoint) != (b.endpoints, b.observed_endpoint)
        for a, b in zip(before, after, strict=True)
    )
    return active, netmap.EndpointOwners(active.values()) if claims_moved else d.owners


@dataclass
class Tables:
    """A directory's record tables, for applying changes to (copied on first write)."""

    nodes: Mapping[str, Node]
    tenants: Mapping[str, Tenant]
    workloads: Mapping[str, Workload]
    users: Mapping[str, User]
    groups: Mapping[str, Group]
    copied: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, d: Directory) -> Tables:
        """Tables sharing ``d``'s until one is changed (then that one is copied)."""
        return cls(d.nodes, d.tenants, d.workloads, d.users, d.groups)

    def apply(self, change: Change) -> None:
        attr = change.kind + "s"
        if attr not in self.copied:
            setattr(self, attr, dict(getattr(self, attr)))
            self.copied.add(attr)
        table: dict[str, Any] = getattr(self, attr)
        if change.data is None:
            table.pop(change.key, None)
        else:
            table[change.key] = record_from_data(change.kind, change.data)


def node_map(directory: Directory, name: str) -> netmap.NodeMap:
    """Node ``name``'s map: all peers while open, else only those it needs."""
    d = directory
    needed = d.needs(name)
    peers = None if needed is None else needed[0]
    built = netmap.build_from(
        d.network, d.nodes.get(name), name, d.active, d.tenants.values(), d.workloads.values(), peers, d.peer
    )
    if d.enforced is None or needed is None:
        return built
    needs = needed[1]
    bundle: dict[str, Any] = {
        "rev": d.enforced.rev,
        "text": d.enforced.text,
        "groups": list(d.enforced.policy.directory_groups()),
        "snapshot": needs.snapshot.to_data(),
    }
    return built.model_copy(update={"policy": bundle})


FEED_BATCH = 1000  # changes read per query while catching up
MAX_STEP_CHANGES = 20_000  # further behind than this, the directory is read whole again
AUDIENCE_HISTORY = 1024  # steps remembered for watchers that are behind


@dataclass(frozen=True)
class Step:
    """The directory moved from ``since`` to ``until``; ``audience`` is whom it concerns,
    ``moved`` the nodes whose peer entry it may change (None: more than peers moved)."""

    since: int
    until: int
    audience: Audience
    moved: frozenset[str] | None


def moved_peers(before: Directory, after: Directory, changes: Sequence[Change]) -> frozenset[str] | None:
    """The nodes whose peer entry the changes may move, or None when they touch what
    else a map holds (tenants, workloads, the network, the policy and what it reads)."""
    kinds = {c.kind for c in changes if c.kind in MAP_KINDS}
    if kinds - {"node"}:
        return None
    nodes = {c.key for c in changes if c.kind == "node"}
    return frozenset(nodes | endpoint_neighbours(before, after, nodes))


class NodeMaps:
    """This process's view of the directory for node maps, moved forward by the change feed.

    Not state anyone relies on: any replica rebuilds it from the store, and a
    watcher it cannot judge (behind its oldest remembered step, or from before
    it started) is simply woken.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._current: Directory | None = None
        self._steps: deque[Step] = deque(maxlen=AUDIENCE_HISTORY)
        self._known_since: int | None = None  # steps are known from this revision on
        self._whole_read_unchecked = False

    @property
    def revision(self) -> int:
        """The revision the held directory is at (0 before the first read)."""
        return 0 if self._current is None else self._current.revision

    def directory(self) -> Directory:
        """The directory at (at least) the store's revision at the time of the call."""
        return self.refresh(self.store.revision())

    def refresh(self, target: int) -> Directory:
        """Move the held directory to ``target`` or later, once per process: a caller
        that finds it there already reads nothing."""
        with self._lock:
            if self._current is None:
                self._current = self._read_whole()
                self._known_since = self._current.revision
            while self._current.revision < target and self._step():
                pass
            return self._current

    def _step(self) -> bool:
        """Read the feed after the held revision and move there; False if it was empty."""
        assert self._current is not None
        before = self._current
        changes = self._read_feed(before.revision)
        if changes is None:  # too far behind (or the feed was pruned): read it whole
            self._current = self._read_whole()
            self._record(Step(before.revision, self._current.revision, EVERYONE, None))
            return True
        if not changes:
            return False
        after = advanced(before, changes, lambda rev: self.store.get(PolicyRevision, rev))
        audience, moved = affected(before, after, changes), moved_peers(before, after, changes)
        if self._whole_read_unchecked:  # ``before`` may already hold some of these changes
            audience, moved, self._whole_read_unchecked = EVERYONE, None, False
        self._record(Step(before.revision, after.revision, audience, moved))
        self._current = after
        log.debug("directory %d -> %d concerns %s", before.revision, after.revision, audience.describe())
        return True

    def _read_whole(self) -> Directory:
        """The directory read record by record. Its revision is read first, so when a
        commit landed meanwhile its records may be in it already: then the step after it
        cannot be judged by comparing the two and concerns everyone."""
        directory = read_directory(self.store)
        self._whole_read_unchecked = self.store.revision() != directory.revision
        return directory

    def _record(self, step: Step) -> None:
        """Remember a step; consecutive steps that concern nobody (last-seen ticks, tokens,
        DNS) are one, so the history reaches back over time, not over write volume."""
        last = self._steps[-1] if self._steps else None
        idle = step.audience == NOBODY and step.moved == frozenset()
        if (
            idle
            and last is not None
            and last.until == step.since
            and last.audience == NOBODY
            and last.moved == frozenset()
        ):
            self._steps[-1] = replace(last, until=step.until)
        else:
            self._steps.append(step)

    def _read_feed(self, since: int) -> list[Change] | None:
        changes: list[Change] = []
        while len(changes) <= MAX_STEP_CHANGES:
            batch = self.store.changes(since, FEED_BATCH)
            changes += batch
            if len(batch) < FEED_BATCH:
                return changes
            since = batch[-1].rev
        return None

    def concerns(self, name: str, since: int) -> bool:
        """Whether anything after revision ``since`` (up to the held revision) can change
        node ``name``'s map. True when that cannot be told (the steps are forgotten)."""
        steps = self._steps_after(since)
        return steps is None or any(s.audience.includes(name) for s in steps)

    def audience_since(self, since: int) -> Audience:
        """Everyone the steps after ``since`` concern (everyone, when that cannot be told)."""
        steps = self._steps_after(since)
        if steps is None or any(s.audience.everyone for s in steps):
            return EVERYONE
        return Audience(frozenset().union(*(s.audience.nodes for s in steps)))

    def moved_between(self, since: int, until: int) -> frozenset[str] | None:
        """The nodes whose peer entries may differ between revisions ``since`` and ``until``,
        or None when more than peer entries may differ or that cannot be told."""
        steps = self._steps_after(since)
        if steps is None:
            return None
        moved: set[str] = set()
        for step in (s for s in steps if s.since < until):
            if step.moved is None or step.until > until:
                return None
            moved |= step.moved
        return frozenset(moved)

    def _steps_after(self, since: int) -> list[Step] | None:
        """The steps after revision ``since``; None when the history does not reach back there."""
        with self._lock:
            if self._known_since is None or since < self._known_since:
                return None
            steps = [s for s in self._steps if s.until > since]
            if steps and steps[0].since > since:
                return None
            return steps

    def build(self, name: str) -> netmap.NodeMap:
        return node_map(self.directory(), name)
