"""What a new policy revision changes, line by line (``ztos policy diff``).

Compared by name, not by position: renaming a rule reads as one removal and
one addition, editing it lists the fields that changed, and a list field
(members, ports) shows what was added and removed rather than the whole list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from ztos.policy.model import Policy


def diff_policies(old: Policy, new: Policy) -> list[str]:
    """``+ rule x``, ``- group y``, ``~ rule z: ports +tcp/5433`` lines; empty when equal."""
    lines: list[str] = []
    for section in ("groups", "roles", "services"):
        lines += _named(section.rstrip("s"), getattr(old, section), getattr(new, section))
    lines += _named("rule", {r.name: r for r in old.rules}, {r.name: r for r in new.rules})
    if not lines and [r.name for r in old.rules] != [r.name for r in new.rules]:
        lines.append("~ rules reordered (explanations may name another rule first; traffic is the same)")
    return lines


def _named(kind: str, old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]) -> Iterator[str]:
    for name in sorted(old.keys() - new.keys()):
        yield f"- {kind} {name}"
    for name in sorted(new.keys() - old.keys()):
        yield f"+ {kind} {name}"
    for name in sorted(old.keys() & new.keys()):
        changes = list(_fields(_plain(old[name]), _plain(new[name])))
        if changes:
            yield f"~ {kind} {name}: " + "; ".join(changes)


def _plain(model: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _fields(old: dict[str, Any], new: dict[str, Any]) -> Iterator[str]:
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, list) and isinstance(after, list) and _hashable(before + after):
            removed = [f"-{v}" for v in before if v not in after]
            added = [f"+{v}" for v in after if v not in before]
            yield f"{key} " + " ".join(removed + added) if removed or added else f"{key} reordered"
        else:
            yield f"{key} {_text(before)} -> {_text(after)}"


def _hashable(values: list[Any]) -> bool:
    return all(isinstance(v, str | int | float) for v in values)


def _text(value: Any) -> str:
    return "(none)" if value in (None, "", [], {}) else str(value)
