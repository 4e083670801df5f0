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
revision (``NodeMaps`` caches it), then each map is a cheap per-host lookup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ztos import netmap
from ztos.controller import policies
from ztos.directory import Store
from ztos.errors import NotFound
from ztos.model import Group, Network, Node, NodeStatus, PolicyRevision, Tenant, User, Workload
from ztos.policy import KnownNames, Policy, Snapshot, load_policy
from ztos.policy.needs import Reach

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
    """What map builds read, taken from the store at one revision."""

    network: Network
    nodes: list[Node]
    tenants: list[Tenant]
    workloads: list[Workload]
    enforced: Enforced | None  # None: the network is open
    reach: Reach | None
    owners: netmap.EndpointOwners


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
    )


def directory_of(
    network: Network,
    nodes: list[Node],
    tenants: list[Tenant],
    workloads: list[Workload],
    users: list[User],
    groups: list[Group],
    current: PolicyRevision | None,
) -> Directory:
    """The records, and the policy in force resolved against them (None while open)."""
    named = {g.name for g in groups} | {name for u in users for name in u.groups}
    policy = enforced(network, current, KnownNames(groups=frozenset(named)))
    reach = None
    if policy is not None:
        reach = Reach(policy.policy, Snapshot.from_records(nodes, users, workloads, groups))
    active = [n for n in nodes if n.status is NodeStatus.ACTIVE]
    return Directory(network, nodes, tenants, workloads, policy, reach, netmap.EndpointOwners(active))


def node_map(directory: Directory, name: str) -> netmap.NodeMap:
    """Node ``name``'s map: all peers while open, else only those it needs."""
    d = directory
    if d.enforced is None or d.reach is None:
        return netmap.build(d.network, d.nodes, name, d.tenants, d.workloads, owners=d.owners)
    shared = netmap.tenant_peers(d.tenants, name)
    needs = d.reach.needs(name, also=shared)
    built = netmap.build(
        d.network, d.nodes, name, d.tenants, d.workloads, peers=shared | needs.policy_peers, owners=d.owners
    )
    bundle: dict[str, Any] = {
        "rev": d.enforced.rev,
        "text": d.enforced.text,
        "groups": list(d.enforced.policy.directory_groups()),
        "snapshot": needs.snapshot.to_data(),
    }
    return built.model_copy(update={"policy": bundle})


class NodeMaps:
    """Builds node maps from a store, resolving the policy once per directory revision.

    The revision is read *before* the records, so a cached entry is never newer
    than its key claims; a write in between only makes the next call rebuild.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[int, Directory] | None = None

    def directory(self) -> Directory:
        revision = self.store.revision()
        with self._lock:
            if self._cached is None or self._cached[0] != revision:
                self._cached = (revision, read_directory(self.store))
            return self._cached[1]

    def build(self, name: str) -> netmap.NodeMap:
        return node_map(self.directory(), name)
