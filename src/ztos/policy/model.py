"""The policy document: what may talk to what, as pydantic models.

A policy is default deny. It names *who* (groups of users, workloads and
nodes; roles; tags; tenants; services), never addresses, so the same document
compiles on every host and a change of membership only changes set elements
(``ztos.policy.compile``). Rules only ever *allow*: the allowed traffic is the
union of the rules, so their order changes nothing but which rule an
explanation names first, and a compiled rule list never needs re-ordering when
membership changes. Denying by posture, place or time is written as a ``when``
condition on the allow rule (fail closed: a missing attribute fails).

Shape (YAML, or the same structure as a REST body)::

    version: 1
    groups:   {NAME: {users: [...], workloads: [...], nodes: [...], comment: ...}}
    roles:    {NAME: {users: [...], groups: [...]}}          # besides admin/operator/...
    services: {NAME: {tenant: T, workloads: [...], tags: [...], ports: [tcp/5432]}}
    rules:
      - name: finance-to-db
        comment: finance reads the ledger
        from: {groups: [finance]}          # or "*"
        to: {services: [db]}
        ports: [tcp/5432]                  # optional when `to` names only services
        when:
          - {attr: device.posture.healthy, op: eq, value: true}
          - {time: "08:00-18:00", days: [mon, tue, wed, thu, fri], tz: Europe/Paris}

Ports are ``tcp/N``, ``udp/N-M``, ``icmp`` (echo, IPv4 and IPv6) or ``any``.
Models here check shape and syntax only; references between them (unknown
groups, duplicate rule names, ports a service does not expose) are checked
by ``ztos.policy.loader.check_references`` so that every error is reported at
once, with its line.
"""

from __future__ import annotations

import re
from datetime import time as Clock
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ztos.model import Name
from ztos.naming import TAG_RE, is_tag

PROTOCOLS = ("tcp", "udp", "icmp", "any")
PORTED = ("tcp", "udp")
OPERATORS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "exists", "absent")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ATTR_RE = re.compile(r"^(tenant|(device|user|workload)\.[a-z][a-z0-9_.-]{0,63})$")
WINDOW_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)", re.ASCII)

Scalar = str | int | float | bool


def check_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    for tag in tags:
        if not is_tag(tag):
            raise ValueError(f"tag {tag!r} must match {TAG_RE.pattern}")
    return tags


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PortSpec(Strict):
    """One protocol and port range; written and shown as ``tcp/5432``."""

    proto: Literal["tcp", "udp", "icmp", "any"]
    low: int | None = Field(default=None, ge=1, le=65535)  # bounded when given as fields too
    high: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_port(value) if isinstance(value, str | int) else value

    @model_serializer
    def _text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.low is None:
            return self.proto
        return f"{self.proto}/{self.low}" if self.low == self.high else f"{self.proto}/{self.low}-{self.high}"

    def covers(self, proto: str, port: int | None) -> bool:
        """Whether a packet of ``proto`` to ``port`` falls in this spec."""
        if self.proto == "any":
            return True
        if self.proto != proto:
            return False
        return self.low is None or (port is not None and self.low <= port <= (self.high or self.low))

    def within(self, other: PortSpec) -> bool:
        """Whether every packet this spec admits is admitted by ``other``."""
        if other.proto == "any" or (other.proto == self.proto and other.low is None):
            return True
        if other.proto != self.proto or self.low is None or other.low is None:
            return False
        return other.low <= self.low and (self.high or self.low) <= (other.high or other.low)


def parse_port(value: str | int) -> dict[str, Any]:
    """``"tcp/5432"`` -> fields of ``PortSpec``; ValueError says how to write it."""
    if isinstance(value, int):
        raise ValueError(f"write the protocol too, e.g. tcp/{value}")
    proto, sep, ports = value.strip().lower().partition("/")
    if proto not in PROTOCOLS:
        raise ValueError(f"unknown protocol {proto!r}: use tcp/PORT, udp/PORT, udp/LOW-HIGH, icmp or any")
    if proto not in PORTED:
        if sep:
            raise ValueError(f"{proto} takes no port: write {proto!r}")
        return {"proto": proto}
    if not ports:
        raise ValueError(f"{proto} needs a port or range, e.g. {proto}/443 or {proto}/1-65535")
    low, high = _port_range(ports)
    return {"proto": proto, "low": low, "high": high}


def _port_range(text: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise ValueError(f"{text!r} is not a port or LOW-HIGH range")
    low, high = int(first), int(last) if dash else int(first)
    for port in (low, high):
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range: use 1-65535")
    if low > high:
        raise ValueError(f"range {low}-{high} is reversed: write {high}-{low}")
    return low, high


class Selector(Strict):
    """Who a rule side names: the union of every list given (``"*"`` is everyone)."""

    any: bool = False
    users: tuple[Name, ...] = ()
    groups: tuple[Name, ...] = ()
    roles: tuple[Name, ...] = ()
    tags: tuple[str, ...] = ()
    tenants: tuple[Name, ...] = ()
    services: tuple[Name, ...] = ()
    workloads: tuple[Name, ...] = ()
    nodes: tuple[Name, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _star(cls, value: Any) -> Any:
        if value == "*":
            return {"any": True}
        if isinstance(value, str):
            raise ValueError('a selector is "*" or a mapping such as {groups: [finance]}')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if not self.any and not any(getattr(self, kind) for kind in SELECTOR_KINDS):
            raise ValueError(f'names nobody: give "*" or one of {", ".join(SELECTOR_KINDS)}')
        return self

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return check_tags(tags)

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        if self.any:
            return "*"
        return {k: v for k, v in handler(self).items() if v and k != "any"}

    def without_services(self) -> Selector | None:
        """The identity part of a destination (services compile as their own clauses)."""
        if not self.any and not any(getattr(self, k) for k in SELECTOR_KINDS if k != "services"):
            return None
        return self.model_copy(update={"services": ()})


SELECTOR_KINDS = ("users", "groups", "roles", "tags", "tenants", "services", "workloads", "nodes")


class AttrCondition(Strict):
    """An attribute test on one side of the flow: ``device.X`` (the node the
    identity runs on, or the node itself), ``user.X`` (a workload's owner),
    ``workload.X`` or ``tenant``. A missing attribute fails every operator but
    ``absent``: an unknown posture is not a healthy one."""

    attr: str
    op: Literal["eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "exists", "absent"]
    value: Scalar | tuple[Scalar, ...] | None = None
    of: Literal["src", "dst"] = "src"

    @field_validator("attr")
    @classmethod
    def _attr(cls, attr: str) -> str:
        if not ATTR_RE.fullmatch(attr):
            raise ValueError("attribute must be tenant, device.NAME, user.NAME or workload.NAME")
        return attr

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Scalar | tuple[Scalar, ...] | None, info: ValidationInfo) -> object:
        op = info.data.get("op")
        problem = _value_problem(op, value) if op else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _value_given(self) -> AttrCondition:
        if self.value is None and self.op not in ("exists", "absent"):
            raise ValueError(f"{self.op} needs a value")
        return self


def _value_problem(op: str, value: object) -> str | None:
    if op in ("exists", "absent"):
        return None if value is None else f"{op} takes no value"
    if value is None:
        return f"{op} needs a value"
    if op in ("in", "not_in"):
        return None if isinstance(value, tuple) else f"{op} needs a list of values"
    if isinstance(value, tuple):
        return f"{op} needs one value, not a list"
    if op in ("lt", "le", "gt", "ge") and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{op} needs a number"
    return None


class TimeCondition(Strict):
    """A time window (``HH:MM-HH:MM``, may wrap past midnight) on some days, in a zone."""

    time: str
    days: tuple[Day, ...] = DAYS
    tz: str = "UTC"

    @field_validator("time")
    @classmethod
    def _window(cls, window: str) -> str:
        match = WINDOW_RE.fullmatch(window)
        if not match or window[:5] == window[6:]:
            raise ValueError("time window must be HH:MM-HH:MM (24 h clock, start != end), e.g. 08:00-18:00")
        return window

    @field_validator("tz")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}: use an IANA name like Europe/Paris") from exc
        return zone

    @property
    def bounds(self) -> tuple[Clock, Clock | None]:
        """Start and end; an end of 24:00 is ``None`` (end of day)."""
        start, end = self.time.split("-")
        return Clock.fromisoformat(start), None if end == "24:00" else Clock.fromisoformat(end)


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "time-condition" if "time" in value else "attr-condition"
    return "time-condition" if isinstance(value, TimeCondition) else "attr-condition"


Condition = Annotated[
    Annotated[AttrCondition, Tag("attr-condition")] | Annotated[TimeCondition, Tag("time-condition")],
    Discriminator(_condition_kind),
]


class Rule(Strict):
    """Allow ``from`` to reach ``to`` on ``ports`` while every ``when`` holds."""

    name: Name
    comment: str = ""
    source: Selector = Field(alias="from")
    to: Selector
    ports: tuple[PortSpec, ...] | None = None
    when: tuple[Condition, ...] = ()
    _line: int | None = PrivateAttr(default=None)

    @property
    def line(self) -> int | None:
        """The line of the rule in its file (set by the loader); not part of equality."""
        return self._line

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rule):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = Strict.__hash__

    @model_serializer(mode="wrap")
    def _by_alias(self, handler: Any) -> Any:
        data = handler(self)
        data["from"] = data.pop("source", data.get("from"))
        return {k: v for k, v in data.items() if v not in ((), None, "")}


class GroupDef(Strict):
    """Members named directly; a workload is also a member through its owner."""

    users: tuple[Name, ...] = ()
    workloads: tuple[Name, ...] = ()
    nodes: tuple[Name, ...] = ()
    comment: str = ""


class RoleDef(Strict):
    """A policy role: users directly or through groups (besides the built-in roles)."""

    users: tuple[Name, ...] = ()
    groups: tuple[Name, ...] = ()
    comment: str = ""


class ServiceDef(Strict):
    """Named workloads of one tenant (by name or tag) and the ports they serve."""

    tenant: Name
    workloads: tuple[Name, ...] = ()
    tags: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = Field(min_length=1)
    comment: str = ""

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return check_tags(tags)

    @model_validator(mode="after")
    def _names_someone(self) -> ServiceDef:
        if not self.workloads and not self.tags:
            raise ValueError("a service needs workloads or tags")
        return self


class Policy(Strict):
    """A whole policy document."""

    version: Literal[1] = 1
    groups: dict[Name, GroupDef] = Field(default_factory=dict)
    roles: dict[Name, RoleDef] = Field(default_factory=dict)
    services: dict[Name, ServiceDef] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def directory_groups(self) -> tuple[str, ...]:
        """Groups the policy names but does not define: they live in the directory,
        and whoever loads the policy text again must be told they exist."""
        named = {g for rule in self.rules for side in (rule.source, rule.to) for g in side.groups}
        named |= {g for role in self.roles.values() for g in role.groups}
        return tuple(sorted(named - set(self.groups)))
