"""Who a selector names and whether conditions hold: one answer for ``decide`` and the compiler.

``ztos policy test`` must agree with what packets do, so the explanation and
the compiled sets are computed from the same indexes: ``Resolver`` turns the
policy's groups, roles, services and the snapshot into ``name -> identities``
maps once, then a selector's members are a union of lookups (fast enough for
10,000 rules over 5,000 identities) and ``why`` explains one identity's
membership from the same maps.

A rule expands into *clauses*, one per destination part: the identity part of
``to`` (with the rule's ports) and one per named service (with the rule's
ports, or the service's own). Each clause compiles to its own destination set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ztos.policy.model import AttrCondition, Policy, PortSpec, Rule, Selector, TimeCondition
from ztos.policy.snapshot import Ident, Snapshot

Members = frozenset[Ident]
_EMPTY: Members = frozenset()


@dataclass(frozen=True)
class Clause:
    """One destination part of a rule; ``key`` names its sets (``r3`` or ``r3_db``)."""

    rule: Rule
    number: int  # the rule's position, 1-based
    service: str | None
    dst: Selector
    ports: tuple[PortSpec, ...]

    @property
    def key(self) -> str:
        return f"r{self.number}" if self.service is None else f"r{self.number}_{self.service}"


def clauses(policy: Policy) -> list[Clause]:
    """Every clause of every rule, in policy order."""
    found: list[Clause] = []
    for number, rule in enumerate(policy.rules, start=1):
        identity_part = rule.to.without_services()
        if identity_part is not None:
            found.append(Clause(rule, number, None, identity_part, rule.ports or ()))
        for name in rule.to.services:
            ports = rule.ports or policy.services[name].ports
            found.append(Clause(rule, number, name, Selector(services=(name,)), ports))
    return found


class Resolver:
    """Membership indexes of one (policy, snapshot) pair."""

    def __init__(self, policy: Policy, snapshot: Snapshot) -> None:
        self.policy, self.snapshot = policy, snapshot
        self.everyone: Members = frozenset(
            [("workload", w) for w in snapshot.workloads] + [("node", n) for n in snapshot.nodes]
        )
        self.users_in_group = self._users_in_groups()
        self.owned = self._by_owner()
        self.index: dict[str, dict[str, Members]] = {
            "users": self.owned,
            "groups": self._by_group(),
            "roles": self._by_role(),
            "tags": self._by_tag(),
            "tenants": self._by_tenant(),
            "services": self._by_service(),
            "workloads": {w: frozenset({("workload", w)}) for w in snapshot.workloads},
            "nodes": {n: frozenset({("node", n)}) for n in snapshot.nodes},
        }

    # --- membership --------------------------------------------------------------------

    def members(self, selector: Selector) -> Members:
        if selector.any:
            return self.everyone
        found: set[Ident] = set()
        for kind, names in _parts(selector):
            table = self.index[kind]
            for name in names:
                found |= table.get(name, _EMPTY)
        return frozenset(found)

    def why(self, selector: Selector, ident: Ident) -> str | None:
        """Why ``ident`` is named by ``selector``, or None when it is not."""
        if selector.any:
            return f"{ident[1]} matches *"
        for kind, names in _parts(selector):
            for name in names:
                if ident in self.index[kind].get(name, _EMPTY):
                    return self._because(kind, name, ident)
        return None

    def _because(self, kind: str, name: str, ident: Ident) -> str:
        singular = kind.rstrip("s")
        owner = self.snapshot.owner_of(ident)
        if kind in ("groups", "roles") and owner and not self._direct(kind, name, ident):
            return f"{ident[1]} is in {singular} {name} through its owner {owner.name}"
        if kind == "users":
            return f"{ident[1]} is owned by user {name}"
        if kind in ("workloads", "nodes"):
            return f"{ident[1]} is named"
        return f"{ident[1]} is in {singular} {name}"

    def _direct(self, kind: str, name: str, ident: Ident) -> bool:
        group = self.policy.groups.get(name)
        listed = group is not None and ident[1] in (group.workloads + group.nodes)
        return (
            listed
            or ident[1] in self.snapshot.groups.get(name, ())
            or (kind == "roles" and ident[0] == "node")
        )

    # --- indexes -----------------------------------------------------------------------

    def _users_in_groups(self) -> dict[str, set[str]]:
        users: dict[str, set[str]] = defaultdict(set)
        for name, group in self.policy.groups.items():
            users[name].update(group.users)
        for name, members in self.snapshot.groups.items():
            users[name].update(m for m in members if m in self.snapshot.users)
        for user in self.snapshot.users.values():
            for name in user.groups:
                users[name].add(user.name)
        return users

    def _owned_by(self, users: Iterable[str]) -> set[Ident]:
        owned = self.owned
        return {ident for user in users for ident in owned.get(user, ())}

    def _by_owner(self) -> dict[str, Members]:
        owned: dict[str, set[Ident]] = defaultdict(set)
        for workload in self.snapshot.workloads.values():
            if workload.owner:
                owned[workload.owner].add(("workload", workload.name))
        return {user: frozenset(found) for user, found in owned.items()}

    def _by_group(self) -> dict[str, Members]:
        names = set(self.policy.groups) | set(self.snapshot.groups) | set(self.users_in_group)
        return {name: frozenset(self._group_members(name)) for name in names}

    def _group_members(self, name: str) -> set[Ident]:
        group = self.policy.groups.get(name)
        listed = set(self.snapshot.groups.get(name, ())) | set(group.workloads + group.nodes if group else ())
        found = self._owned_by(self.users_in_group.get(name, ()))
        found |= {("workload", n) for n in listed if n in self.snapshot.workloads}
        return found | {("node", n) for n in listed if n in self.snapshot.nodes}

    def _by_role(self) -> dict[str, Members]:
        holders: dict[str, set[str]] = defaultdict(set)
        for user in self.snapshot.users.values():
            for role in user.roles:
                holders[role].add(user.name)
        found: dict[str, set[Ident]] = defaultdict(set)
        for name, definition in self.policy.roles.items():
            holders[name].update(definition.users)
            for group in definition.groups:
                holders[name].update(self.users_in_group.get(group, ()))
                found[name] |= {i for i in self._group_members(group) if i[0] == "node"}
        for role, users in holders.items():
            found[role] |= self._owned_by(users)
        for node in self.snapshot.nodes.values():
            found[node.role].add(("node", node.name))
        return {role: frozenset(idents) for role, idents in found.items()}

    def _by_tag(self) -> dict[str, Members]:
        found: dict[str, set[Ident]] = defaultdict(set)
        for workload in self.snapshot.workloads.values():
            for tag in workload.tags:
                found[tag].add(("workload", workload.name))
        for node in self.snapshot.nodes.values():
            for tag in node.tags:
                found[tag].add(("node", node.name))
        return {tag: frozenset(idents) for tag, idents in found.items()}

    def _by_tenant(self) -> dict[str, Members]:
        found: dict[str, set[Ident]] = defaultdict(set)
        for workload in self.snapshot.workloads.values():
            found[workload.tenant].add(("workload", workload.name))
        return {tenant: frozenset(idents) for tenant, idents in found.items()}

    def _by_service(self) -> dict[str, Members]:
        found: dict[str, Members] = {}
        for name, service in self.policy.services.items():
            found[name] = frozenset(
                ("workload", w.name)
                for w in self.snapshot.workloads.values()
                if w.tenant == service.tenant
                and (w.name in service.workloads or set(w.tags) & set(service.tags))
            )
        return found

    # --- rules -------------------------------------------------------------------------

    def sources(self, rule: Rule, now: datetime) -> Members:
        """Identities the rule lets send now (selector, ``of: src`` conditions, time)."""
        if not times_hold(rule, now):
            return _EMPTY
        return frozenset(i for i in self.members(rule.source) if self.conditions_hold(rule, "src", i))

    def targets(self, clause: Clause, now: datetime) -> Members:
        if not times_hold(clause.rule, now):
            return _EMPTY
        return frozenset(i for i in self.members(clause.dst) if self.conditions_hold(clause.rule, "dst", i))

    def conditions_hold(self, rule: Rule, side: str, ident: Ident) -> bool:
        return all(self.check(c, ident)[0] for c in attr_conditions(rule, side))

    def check(self, condition: AttrCondition, ident: Ident) -> tuple[bool, str]:
        """Whether ``ident`` passes ``condition``, and what was seen."""
        actual = self.attribute(condition.attr, ident)
        holds = compare(condition.op, actual, condition.value)
        seen = "missing" if actual is None else repr(actual)
        expected = "" if condition.value is None else f" {_show(condition.value)}"
        verdict = "yes" if holds else "no"
        return holds, f"{condition.attr} of {ident[1]} is {seen} ({condition.op}{expected}: {verdict})"

    def attribute(self, attr: str, ident: Ident) -> str | None:
        kind, name = ident
        if attr == "tenant":
            return self.snapshot.workloads[name].tenant if kind == "workload" else None
        scope, _, key = attr.partition(".")
        if scope == "device":
            device = self.snapshot.device_of(ident)
            return device.attributes.get(key) if device else None
        if scope == "user":
            owner = self.snapshot.owner_of(ident)
            return owner.attributes.get(key) if owner else None
        return self.snapshot.workloads[name].attributes.get(key) if kind == "workload" else None


def _parts(selector: Selector) -> Iterator[tuple[str, tuple[str, ...]]]:
    for kind in ("workloads", "nodes", "users", "groups", "roles", "tags", "tenants", "services"):
        names: tuple[str, ...] = getattr(selector, kind)
        if names:
            yield kind, names


def attr_conditions(rule: Rule, side: str) -> list[AttrCondition]:
    return [c for c in rule.when if isinstance(c, AttrCondition) and c.of == side]


def time_conditions(rule: Rule) -> list[TimeCondition]:
    return [c for c in rule.when if isinstance(c, TimeCondition)]


# --- comparisons -------------------------------------------------------------------------------


def compare(op: str, actual: str | None, expected: object) -> bool:
    """Fail closed: a missing attribute passes only ``absent``."""
    if op in ("exists", "absent"):
        return (actual is not None) == (op == "exists")
    if actual is None:
        return False
    if op in ("in", "not_in"):
        inside = any(_equal(actual, value) for value in expected)  # type: ignore[attr-defined]
        return inside == (op == "in")
    if op in ("eq", "ne"):
        return _equal(actual, expected) == (op == "eq")
    return _ordered(op, actual, expected)


def _equal(actual: str, expected: object) -> bool:
    if isinstance(expected, bool):
        return actual.strip().lower() == str(expected).lower()
    if isinstance(expected, int | float):
        number = _number(actual)
        return number is not None and number == expected
    return actual == str(expected)


def _ordered(op: str, actual: str, expected: object) -> bool:
    number = _number(actual)
    if number is None or not isinstance(expected, int | float):
        return False
    return {
        "lt": number < expected,
        "le": number <= expected,
        "gt": number > expected,
        "ge": number >= expected,
    }[op]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- time ----------------------------------------------------------------------------------


def times_hold(rule: Rule, now: datetime) -> bool:
    return all(in_window(c, now) for c in time_conditions(rule))


def in_window(condition: TimeCondition, now: datetime) -> bool:
    """Whether ``now`` (timezone-aware) falls in the window; overnight windows belong to their start day."""
    local = now.astimezone(ZoneInfo(condition.tz))
    start, end = condition.bounds
    clock = local.time().replace(tzinfo=None)
    day = DAY_NAMES[local.weekday()]
    if end is None or start < end:
        return day in condition.days and start <= clock and (end is None or clock < end)
    yesterday = DAY_NAMES[(local.weekday() - 1) % 7]
    return (day in condition.days and clock >= start) or (yesterday in condition.days and clock < end)


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIDNIGHT = time(0, 0)


def next_change(policy: Policy, now: datetime) -> datetime | None:
    """When a time window next opens or closes (the agent recompiles then; only sets change)."""
    boundaries = [b for c in _all_windows(policy) for b in _boundaries(c, now)]
    later = [b for b in boundaries if b > now]
    return min(later) if later else None


def _all_windows(policy: Policy) -> Iterator[TimeCondition]:
    for rule in policy.rules:
        yield from time_conditions(rule)


def _boundaries(condition: TimeCondition, now: datetime) -> Iterator[datetime]:
    zone = ZoneInfo(condition.tz)
    local = now.astimezone(zone)
    start, end = condition.bounds
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        yield datetime.combine(day, start, tzinfo=zone)
        if end is not None:
            yield datetime.combine(day, end, tzinfo=zone)
        else:
            yield datetime.combine(day + timedelta(days=1), MIDNIGHT, tzinfo=zone)
