"""Who a change concerns: the hosts whose node map a step of the directory can change.

The controller wakes these hosts, and only these (``/api/v1/watch``): a write
to one host's posture must not send ten thousand agents to fetch their maps.
The rules follow what a map holds (``ztos.controller.nodemaps``):

* the network (addressing, BGP, default deny) and the policy in force are in
  every map: a change to them concerns everyone; so do users and groups while
  a policy with rules is enforced (selectors and conditions read them);
* a node's own map concerns it; others hold its *peer entry* (key, endpoint,
  addresses) and, under a policy, its identity in their snapshot: when either
  differs, or it joins or leaves the mesh, every host that lists it as a peer
  before or after the change is concerned (peers are symmetric). An attribute
  no condition reads concerns only the node itself;
* a node's trusted endpoints depend on who else claims the same address, so
  nodes sharing an address with a changed one are judged too;
* a tenant concerns its members before and after; a workload concerns its host
  and, under a policy, the tenant's members (their sets may name it).

Over-approximation is safe (a woken host fetches a map equal to its own);
missing a host is not, so ``tests/unit/test_audience.py`` checks on random
directories that every host left out keeps exactly the map it had.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ztos import netmap
from ztos.directory import Change
from ztos.model import Node
from ztos.policy.snapshot import NodeInfo

if TYPE_CHECKING:
    from ztos.controller.nodemaps import Directory

EVERYONE_KINDS = frozenset({"network"})
POLICY_INPUT_KINDS = frozenset({"user", "group"})


@dataclass(frozen=True)
class Audience:
    """The hosts a change concerns: named ones, or everyone."""

    nodes: frozenset[str] = frozenset()
    everyone: bool = False

    def includes(self, name: str) -> bool:
        return self.everyone or name in self.nodes

    def describe(self) -> str:
        return "every host" if self.everyone else f"{len(self.nodes)} host(s)"


EVERYONE = Audience(everyone=True)
NOBODY = Audience()


def affected(before: Directory, after: Directory, changes: Sequence[Change]) -> Audience:
    """The hosts whose map may differ between ``before`` and ``after`` (``changes`` led there)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for change in changes:
        keys[change.kind].add(change.key)
    if keys.keys() & EVERYONE_KINDS or _policy_moved(before, after):
        return EVERYONE
    if keys.keys() & POLICY_INPUT_KINDS and (_has_rules(before) or _has_rules(after)):
        return EVERYONE
    nodes = keys["node"]
    found = set(nodes)
    for name in nodes | endpoint_neighbours(before, after, nodes):
        if _seen_differently(before, after, name):
            found |= before.peers_of(name) | after.peers_of(name)
    for tenant in keys["tenant"]:
        found |= _members(before, tenant) | _members(after, tenant)
    for workload in keys["workload"]:
        for d in (before, after):
            if (placed := d.workloads.get(workload)) is not None:
                found.add(placed.node)
                if d.reach is not None:
                    found |= _members(d, placed.tenant)
    return Audience(frozenset(found))


def _policy_moved(before: Directory, after: Directory) -> bool:
    def shown(d: Directory) -> tuple[int, str] | None:
        return None if d.enforced is None else (d.enforced.rev, d.enforced.text)

    return shown(before) != shown(after)


def _has_rules(d: Directory) -> bool:
    return d.enforced is not None and bool(d.enforced.policy.rules)


def _members(d: Directory, tenant: str) -> set[str]:
    """The tenant's nodes, and the hosts of its workloads (a policy pairs workload hosts)."""
    found = d.tenants.get(tenant)
    members = set(found.nodes) if found is not None else set()
    return members | {w.node for w in d.workloads.values() if w.tenant == tenant}


def _seen_differently(before: Directory, after: Directory, name: str) -> bool:
    """Whether other hosts see node ``name`` differently: in or out of the mesh, its
    peer entry, or (under a policy) the identity their compilers read."""
    if (name in before.active) != (name in after.active):
        return True
    if name not in after.active:
        return False
    if before.peer(name) != after.peer(name):
        return True
    read = _read_keys(before) | _read_keys(after)
    return _identity(before, name, read) != _identity(after, name, read)


def _read_keys(d: Directory) -> set[str]:
    """The node attributes some condition of the enforced policy reads (``device.*``)."""
    if d.reach is None:
        return set()
    return {k.partition(".")[2] for side in d.reach.conditioned for k in side.keys if k.startswith("device.")}


def _identity(d: Directory, name: str, read: Iterable[str]) -> NodeInfo | None:
    if d.reach is None:
        return None
    info = d.reach.snapshot.nodes.get(name)
    if info is None:
        return None
    kept = {k: info.attributes[k] for k in sorted(read) if k in info.attributes}
    return NodeInfo(info.name, info.addresses, info.role, info.tags, kept)


def endpoint_neighbours(before: Directory, after: Directory, names: Iterable[str]) -> set[str]:
    """Nodes claiming or observed at an underlay address that one of ``names`` claims or
    was observed at (before or after), when its claims or standing changed: whose trusted
    endpoints the change can move. Empty, without a scan, when no claim moved."""
    shifted = [n for n in names if _claims(before.nodes.get(n)) != _claims(after.nodes.get(n))]
    hosts = {h for d in (before, after) for n in shifted if n in d.nodes for h in _hosts(d.nodes[n])}
    if not hosts:
        return set()
    return {n.name for d in (before, after) for n in d.active.values() if hosts & _hosts(n)}


def _claims(node: Node | None) -> tuple[object, ...] | None:
    """What a node's trust in its addresses depends on."""
    if node is None:
        return None
    return (node.endpoints, node.observed_endpoint, node.status, node.enrolled_at)


def _hosts(node: Node) -> set[str]:
    claimed = [*node.endpoints, *([node.observed_endpoint] if node.observed_endpoint else [])]
    return {netmap.endpoint_host(e) for e in claimed}
