"""A directory snapshot: the identities a policy is evaluated and compiled against.

Plain frozen data, so ``decide`` and the compiler are pure functions of
(policy, snapshot, time) and tests build snapshots by hand. Traffic flows
between *workloads* (tenant traffic, on the tenant's L2 segment) and between
*nodes* (host traffic over the WireGuard mesh). A workload runs on a node, its
device: ``device.*`` conditions read that node's attributes (posture,
location, risk score). A workload may have an ``owner`` user, through whom
it belongs to groups and roles.

``Snapshot.from_records`` builds one from directory records (a workload's
``owner`` and ``tags`` come from the record unless overridden);
``from_data``/``to_data`` carry one as plain JSON (to agents, to what-if tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ztos.errors import InvalidInput, NotFound
from ztos.model import Group, Node, NodeStatus, User, Workload

Kind = Literal["workload", "node"]
Ident = tuple[Kind, str]
"""An identity's key: ``("workload", "fin1")`` or ``("node", "h1")``."""


@dataclass(frozen=True)
class NodeInfo:
    """A host: its overlay addresses, role, tags and posture attributes."""

    name: str
    addresses: tuple[str, ...]
    role: str = "node"
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserInfo:
    """A person: directory groups and roles, and attributes for ``user.*`` conditions."""

    name: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkloadInfo:
    """A workload of one tenant on one node; ``addresses`` are bare host addresses."""

    name: str
    tenant: str
    node: str
    addresses: tuple[str, ...]
    owner: str | None = None
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Every identity the policy can name, keyed by name; ``groups`` are directory groups."""

    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    users: Mapping[str, UserInfo] = field(default_factory=dict)
    workloads: Mapping[str, WorkloadInfo] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        nodes: Iterable[NodeInfo] = (),
        users: Iterable[UserInfo] = (),
        workloads: Iterable[WorkloadInfo] = (),
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> Snapshot:
        return cls(
            nodes={n.name: n for n in nodes},
            users={u.name: u for u in users},
            workloads={w.name: w for w in workloads},
            groups={name: frozenset(members) for name, members in (groups or {}).items()},
        )

    @classmethod
    def from_records(
        cls,
        nodes: Sequence[Node],
        users: Sequence[User] = (),
        workloads: Sequence[Workload] = (),
        groups: Sequence[Group] = (),
        owners: Mapping[str, str] | None = None,
        tags: Mapping[str, Sequence[str]] | None = None,
    ) -> Snapshot:
        """From directory records; revoked nodes (and their workloads) are left out."""
        active = [n for n in nodes if n.status is NodeStatus.ACTIVE]
        names = {n.name for n in active}
        return cls.build(
            nodes=(node_info(n) for n in active),
            users=(
                UserInfo(u.name, tuple(u.groups), tuple(r.value for r in u.roles), u.attributes)
                for u in users
            ),
            workloads=(_workload_info(w, owners or {}, tags or {}) for w in workloads if w.node in names),
            groups={g.name: g.members for g in groups},
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Snapshot:
        """From plain data (a JSON file for what-if tests): lists of the info fields by name."""
        try:
            return cls.build(
                nodes=(NodeInfo(**_tupled(n)) for n in data.get("nodes", ())),
                users=(UserInfo(**_tupled(u)) for u in data.get("users", ())),
                workloads=(WorkloadInfo(**_tupled(w)) for w in data.get("workloads", ())),
                groups=data.get("groups"),
            )
        except TypeError as exc:
            raise InvalidInput(f"snapshot: {exc}") from exc

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data; ``from_data`` reads it back."""
        return {
            "nodes": [_plain(n) for n in self.nodes.values()],
            "users": [_plain(u) for u in self.users.values()],
            "workloads": [_plain(w) for w in self.workloads.values()],
            "groups": {name: sorted(members) for name, members in self.groups.items()},
        }

    def identity(self, ref: str) -> Ident:
        """Resolve ``fin1``, ``workload:fin1`` or ``node:h1``; ambiguity and absence are errors."""
        kind, sep, name = ref.partition(":")
        if sep:
            table: Mapping[str, object] = {"workload": self.workloads, "node": self.nodes}.get(kind, {})
            if kind not in ("workload", "node") or name not in table:
                raise NotFound(f"no {kind} named {name!r} (write workload:NAME or node:NAME)")
            return ("workload" if kind == "workload" else "node", name)
        found: list[Ident] = [("workload", ref)] if ref in self.workloads else []
        found += [("node", ref)] if ref in self.nodes else []
        if len(found) != 1:
            if found:
                raise InvalidInput(
                    f"{ref!r} is both a workload and a node: write workload:{ref} or node:{ref}"
                )
            raise NotFound(f"no workload or node named {ref!r}")
        return found[0]

    def addresses(self, ident: Ident) -> tuple[str, ...]:
        kind, name = ident
        return self.workloads[name].addresses if kind == "workload" else self.nodes[name].addresses

    def device_of(self, ident: Ident) -> NodeInfo | None:
        """The node whose posture applies: a workload's host, or the node itself."""
        kind, name = ident
        node = self.workloads[name].node if kind == "workload" else name
        return self.nodes.get(node)

    def owner_of(self, ident: Ident) -> UserInfo | None:
        kind, name = ident
        owner = self.workloads[name].owner if kind == "workload" else None
        return self.users.get(owner) if owner else None

    def with_user(self, user: UserInfo) -> Snapshot:
        """A copy with one user replaced (membership changes in tests and what-ifs)."""
        return replace(self, users={**self.users, user.name: user})

    def with_node(self, node: NodeInfo) -> Snapshot:
        return replace(self, nodes={**self.nodes, node.name: node})


def _plain(info: NodeInfo | UserInfo | WorkloadInfo) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
        for k, v in vars(info).items()
    }


def _tupled(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def node_info(node: Node) -> NodeInfo:
    tags = tuple(t.strip() for t in node.attributes.get("tags", "").split(",") if t.strip())
    return NodeInfo(
        name=node.name,
        addresses=(str(node.overlay_ipv6), str(node.overlay_ipv4)),
        role=node.role.value,
        tags=tags,
        attributes=dict(node.attributes),
    )


def _workload_info(
    workload: Workload, owners: Mapping[str, str], tags: Mapping[str, Sequence[str]]
) -> WorkloadInfo:
    addresses = tuple(str(ipaddress.ip_interface(a).ip) for a in (workload.ipv6, workload.ipv4) if a)
    return WorkloadInfo(
        name=workload.name,
        tenant=workload.tenant,
        node=workload.node,
        addresses=addresses,
        owner=owners.get(workload.name, workload.owner),
        tags=tuple(tags.get(workload.name, workload.tags)),
    )
