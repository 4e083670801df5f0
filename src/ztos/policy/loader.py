"""Load a policy from YAML (or a REST body) and report *every* error with its line.

A policy is applied whole or not at all, so the loader collects all problems
before refusing: YAML syntax, duplicate keys (PyYAML would silently keep the
last one), shape errors from pydantic and broken references (unknown group,
service, role or tenant; duplicate rule names; ports a service does not
serve). Each problem reads ``FILE:LINE: PATH: MESSAGE (got VALUE)``.

Lines come from composing the YAML node tree first (``yaml.compose``) and
recording the line of every mapping value and sequence item under its path;
a pydantic error location is then mapped to the closest recorded path. A REST
body has no lines: its problems read ``api: PATH: MESSAGE``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor

from ztos.errors import InvalidInput
from ztos.model import Role
from ztos.policy.model import GroupDef, Policy, PortSpec, RoleDef, Rule, Selector, ServiceDef

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: ~10x faster
Loc = tuple[str | int, ...]
Lines = dict[Loc, int]
_TAGS = {"attr-condition", "time-condition"}
_NOTHING = object()
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, located as precisely as the input allows."""

    source: str
    line: int | None
    path: str
    message: str
    value: object = _NOTHING

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        got = "" if self.value is _NOTHING else f" (got {_short(self.value)})"
        return f"{where}: {self.path or '(document)'}: {self.message}{got}"


class PolicyInvalid(InvalidInput):
    """A refused policy; ``problems`` lists every error (nothing was applied)."""

    code = "invalid_policy"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = f"{len(problems)} error{'s' if len(problems) != 1 else ''}"
        super().__init__(f"policy refused ({count}):\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class KnownNames:
    """Names the directory knows; ``tenants=None`` skips the tenant check (no directory)."""

    tenants: frozenset[str] | None = None
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = field(default_factory=lambda: frozenset(r.value for r in Role))


# --- entry points --------------------------------------------------------------------------


def load_policy_file(path: str | Path, known: KnownNames | None = None) -> Policy:
    """Read and validate a policy file; ``PolicyInvalid`` lists every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{file}: cannot read policy file: {exc}") from exc
    return load_policy(text, str(file), known)


def load_policy(text: str, source: str = "<policy>", known: KnownNames | None = None) -> Policy:
    """Validate YAML text; problems name ``source`` and a line."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
        data = SafeConstructor().construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise PolicyInvalid([_syntax_problem(exc, source)]) from exc
    except yaml.YAMLError as exc:
        raise PolicyInvalid([Problem(source, None, "", f"YAML error: {exc}")]) from exc
    lines: Lines = {}
    duplicates = list(_record_lines(root, (), lines)) if root is not None else []
    return _validate(data, source, lines, [Problem(source, ln, p, m) for ln, p, m in duplicates], known)


def policy_from_data(data: Any, source: str = "api", known: KnownNames | None = None) -> Policy:
    """Validate an already parsed document (a REST body); problems have no lines."""
    return _validate(data, source, {}, [], known)


def _validate(
    data: Any, source: str, lines: Lines, problems: list[Problem], known: KnownNames | None
) -> Policy:
    if not isinstance(data, dict):
        got = "an empty document" if data is None else type(data).__name__
        raise PolicyInvalid(
            [*problems, Problem(source, 1 if lines else None, "", f"a policy is a mapping, got {got}")]
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems += [_shape_problem(error, source, lines) for error in exc.errors()]
        policy, positions = _valid_parts(data)
    else:
        positions = list(range(len(policy.rules)))
    problems += [
        Problem(source, _line_of(loc, lines), _render(loc), message, value)
        for loc, message, value in _renumbered(check_references(policy, known or KnownNames()), positions)
    ]
    if problems:
        raise PolicyInvalid(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    _attach_lines(policy, lines)
    return policy


def _valid_parts(data: dict[str, Any]) -> tuple[Policy, list[int]]:
    """The parts that passed validation, so references are checked even beside shape errors.

    Returns the partial policy and, for each of its rules, the rule's index in the document.
    """
    sections: dict[str, Any] = {}
    for name, model in (("groups", GroupDef), ("roles", RoleDef), ("services", ServiceDef)):
        entries = data.get(name)
        sections[name] = {k: v for k, v in _each_valid(model, entries)} if isinstance(entries, dict) else {}
    rules = data.get("rules")
    items = list(enumerate(rules)) if isinstance(rules, list) else []
    lenient = [(index, _lenient_rule(raw)) for index, raw in items]
    kept = [(index, rule) for index, rule in lenient if rule is not None]
    policy = Policy.model_construct(**sections, rules=tuple(rule for _, rule in kept), version=1)
    return policy, [index for index, _ in kept]


def _lenient_rule(raw: Any) -> Rule | None:
    """A rule built from whichever of its parts are valid (a broken part names nobody)."""
    if not isinstance(raw, dict):
        return None
    exact = _try(Rule, raw)
    if exact is not None:
        return exact
    nobody = Selector.model_construct()
    name = raw.get("name")
    return Rule.model_construct(
        name=name if isinstance(name, str) else "",
        source=_try(Selector, raw.get("from")) or nobody,
        to=_try(Selector, raw.get("to")) or nobody,
        ports=_lenient_ports(raw.get("ports")),
        when=(),
    )


def _lenient_ports(raw: Any) -> tuple[PortSpec, ...] | None:
    """Valid ports keep their positions; any broken one leaves () (given, but unchecked)."""
    if raw is None:
        return None
    ports = [_try(PortSpec, value) for value in raw] if isinstance(raw, list) else [None]
    return tuple(p for p in ports if p is not None) if all(ports) else ()


def _each_valid(model: type[BaseModel], entries: dict[Any, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in entries.items():
        parsed = _try(model, value)
        if isinstance(key, str) and parsed is not None:
            yield key, parsed


def _try(model: type[M], value: Any) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _renumbered(
    found: list[tuple[Loc, str, object]], positions: list[int]
) -> Iterator[tuple[Loc, str, object]]:
    """Map rule indices of a partial policy back to the document's."""
    for loc, message, value in found:
        if loc[:1] == ("rules",) and isinstance(loc[1], int):
            loc = ("rules", positions[loc[1]], *loc[2:])
        yield loc, message, value


# --- lines ---------------------------------------------------------------------------------


def _record_lines(node: yaml.Node, path: Loc, lines: Lines) -> Iterator[tuple[int, str, str]]:
    """Fill ``lines`` (1-based) for every value under ``node``; yield duplicate keys."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                yield line, _render((*path, key)), f"duplicate key {key!r} (first at line {seen[key]})"
            seen.setdefault(key, line)
            lines[(*path, key, "[key]")] = line
            yield from _record_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _record_lines(item, (*path, index), lines)


def _line_of(loc: Loc, lines: Lines) -> int | None:
    """The line of the longest recorded prefix of ``loc``."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _attach_lines(policy: Policy, lines: Lines) -> None:
    for index, rule in enumerate(policy.rules):
        rule._line = lines.get(("rules", index))


def _render(loc: Loc) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            text += " (key)"
        elif isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --- problems ------------------------------------------------------------------------------


def _syntax_problem(exc: yaml.MarkedYAMLError, source: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    return Problem(source, line, "", f"YAML syntax error: {what}")


def _shape_problem(error: Mapping[str, Any], source: str, lines: Lines) -> Problem:
    loc = tuple(part for part in error["loc"] if part not in _TAGS and not _internal(part))
    message = _message(error, loc)
    value = _NOTHING if error["type"] == "missing" else error.get("input", _NOTHING)
    if error["type"] == "extra_forbidden":
        value = _NOTHING
    return Problem(source, _line_of(_key_loc(loc, error), lines), _render(loc), message, value)


def _internal(part: str | int) -> bool:
    return isinstance(part, str) and "[" in part and part != "[key]"


def _key_loc(loc: Loc, error: Mapping[str, Any]) -> Loc:
    """Unknown keys point at the key's own line."""
    return (*loc, "[key]") if error["type"] == "extra_forbidden" else loc


def _message(error: Mapping[str, Any], loc: Loc) -> str:
    kind, message = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" if loc else "unknown key"
    if kind == "missing":
        return "required but missing"
    if kind == "literal_error" and loc and loc[-1] == "op":
        return f"unknown operator: use one of {error.get('ctx', {}).get('expected', '')}"
    return message.removeprefix("Value error, ")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- references ----------------------------------------------------------------------------


def check_references(policy: Policy, known: KnownNames) -> list[tuple[Loc, str, object]]:
    """Every broken reference: ``(path, message, offending value)``."""
    return [
        *_duplicate_rules(policy),
        *_selector_references(policy, known),
        *_role_references(policy, known),
        *_service_tenants(policy, known),
        *_rule_ports(policy),
    ]


def _duplicate_rules(policy: Policy) -> Iterator[tuple[Loc, str, object]]:
    first: dict[str, int] = {}
    for index, rule in enumerate(policy.rules):
        if rule.name in first:
            yield ("rules", index, "name"), "duplicate rule name: rule names must be unique", rule.name
        first.setdefault(rule.name, index)


def _selector_references(policy: Policy, known: KnownNames) -> Iterator[tuple[Loc, str, object]]:
    for index, rule in enumerate(policy.rules):
        for side, selector in (("from", rule.source), ("to", rule.to)):
            yield from _selector_problems(policy, known, ("rules", index, side), selector)


def _selector_problems(
    policy: Policy, known: KnownNames, loc: Loc, selector: Selector
) -> Iterator[tuple[Loc, str, object]]:
    groups, roles = set(policy.groups) | known.groups, set(policy.roles) | known.roles
    checks: list[tuple[str, Iterable[str], str]] = [
        ("groups", groups, "unknown group"),
        ("roles", roles, "unknown role"),
        ("services", policy.services, "unknown service"),
    ]
    if known.tenants is not None:
        checks.append(("tenants", known.tenants, "unknown tenant"))
    for kind, names, message in checks:
        for position, name in enumerate(getattr(selector, kind)):
            if name not in names:
                yield (*loc, kind, position), _with_choices(message, names), name


def _with_choices(message: str, names: Iterable[str]) -> str:
    choices = sorted(names)
    shown = ", ".join(choices[:8]) + (", ..." if len(choices) > 8 else "")
    return f"{message}: defined are {shown}" if choices else f"{message}: none is defined"


def _role_references(policy: Policy, known: KnownNames) -> Iterator[tuple[Loc, str, object]]:
    groups = set(policy.groups) | known.groups
    for name, role in policy.roles.items():
        for position, group in enumerate(role.groups):
            if group not in groups:
                yield ("roles", name, "groups", position), _with_choices("unknown group", groups), group


def _service_tenants(policy: Policy, known: KnownNames) -> Iterator[tuple[Loc, str, object]]:
    if known.tenants is None:
        return
    for name, service in policy.services.items():
        if service.tenant not in known.tenants:
            yield ("services", name, "tenant"), _with_choices("unknown tenant", known.tenants), service.tenant


def _rule_ports(policy: Policy) -> Iterator[tuple[Loc, str, object]]:
    for index, rule in enumerate(policy.rules):
        if rule.ports is None:
            if rule.to.without_services() is not None:
                yield ("rules", index), "ports are required when `to` names more than services", rule.name
            continue
        yield from _ports_served(policy, index, rule)


def _ports_served(policy: Policy, index: int, rule: Rule) -> Iterator[tuple[Loc, str, object]]:
    for name in rule.to.services:
        service = policy.services.get(name)
        if service is None:
            continue
        for position, port in enumerate(rule.ports or ()):
            if not any(port.within(served) for served in service.ports):
                served_text = ", ".join(str(p) for p in service.ports)
                message = f"service {name!r} serves only {served_text}"
                yield ("rules", index, "ports", position), message, str(port)


# --- rendering -----------------------------------------------------------------------------


def dump_policy(policy: Policy) -> str:
    """The policy as canonical YAML (``ztos policy show``)."""
    data = policy.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def policy_digest(policy: Policy) -> str:
    """A stable sha256 of the policy's meaning (order of mappings ignored, of rules kept)."""
    data = policy.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def port_of(text: str) -> PortSpec:
    """Parse a ``--port tcp/5432`` flag; ``InvalidInput`` when it is not one."""
    try:
        return PortSpec.model_validate(text)
    except ValidationError as exc:
        detail = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"--port {text!r}: {detail}") from exc
