"""nftables: the only module that runs ``nft``; it applies compiled rulesets atomically.

Rulesets arrive as nft JSON objects (``{"nftables": [{"table": …}, {"set": …},
{"chain": …}, {"rule": …}]}``, as ``ztos.policy.compile`` builds them) and
go to ``nft -j -f -`` in *one* transaction: ``add table`` / ``delete table`` /
``add …`` swaps the whole table or changes nothing, so a host is never left
half-filtered. Nebula's reload, in nftables terms: the new ruleset is first
checked (``nft -c``); if nft refuses it, the old one stays and ``ToolError``
carries nft's own message; the structure digests of the old and new tables
are logged.

Idempotent and counter-preserving: every compiled table carries its structure
digest in the comment of chain ``ztos_meta``. When the installed digest equals
the new one, only set elements are reconciled (listed, diffed, changed in one
batch), so counters survive and a membership change never rebuilds the rule
list; ``force=True`` swaps anyway (repairs a hand-edited rule list).

Ownership: every write names a table starting with ``ztos`` (``inet
ztos-host``, ``bridge ztos-t-<tenant>``); anything else is refused before
nft runs, so ZTOS never touches an administrator's or another tool's tables.
``netns=None`` runs in the caller's namespace.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ztos.dataplane.nsexec import netns_argv
from ztos.errors import InvalidInput, ToolError

Json = dict[str, Any]
OWNED_PREFIX = "ztos"
META_CHAIN = "ztos_meta"
DIGEST_MARK = "ztos structure sha256="
NFT_TIMEOUT = 60.0
_MISSING = ("No such file or directory", "does not exist")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did to one table: ``replaced``, ``sets`` (elements only) or ``unchanged``."""

    family: str
    table: str
    action: Literal["replaced", "sets", "unchanged"]
    old_digest: str | None
    new_digest: str | None
    element_commands: int = 0


# --- writes ------------------------------------------------------------------------------------


def apply(
    ruleset: Json, netns: str | None = None, *, force: bool = False, check: bool = True
) -> list[ApplyResult]:
    """Install every table of ``ruleset``: elements only when its structure is unchanged, else a swap."""
    results = []
    for (family, name), objects in _by_table(ruleset).items():
        results.append(_apply_table(family, name, objects, netns, force=force, check=check))
    return results


def plan(ruleset: Json, netns: str | None = None) -> list[str]:
    """What ``apply`` would do, read from the installed tables without changing them:
    one line per table that would be swapped or get element changes."""
    lines = []
    where = f" in {netns}" if netns else ""
    for (family, name), objects in _by_table(ruleset).items():
        old, new = installed_digest(family, name, netns), _digest_of(objects)
        if old is None or old != new:
            lines.append(f"~ nft {family} {name}{where}: {'create' if old is None else 'replace'}")
        elif commands := _element_sync(family, name, objects, netns):
            lines.append(f"~ nft {family} {name}{where}: {len(commands)} element change(s)")
    return lines


def _apply_table(
    family: str, name: str, objects: list[Json], netns: str | None, *, force: bool, check: bool
) -> ApplyResult:
    old, new = installed_digest(family, name, netns), _digest_of(objects)
    if old is not None and old == new and not force:
        commands = _element_sync(family, name, objects, netns)
        if commands:
            _run_batch(commands, netns)
        log.info(
            "nftables %s %s: structure %s unchanged, %d element change(s)",
            family,
            name,
            _short(new),
            len(commands),
        )
        return ApplyResult(family, name, "sets" if commands else "unchanged", old, new, len(commands))
    batch = [{"add": _table_obj(family, name)}, {"delete": _table_obj(family, name)}]
    batch += [{"add": obj} for obj in objects]
    if check:
        _run_batch(batch, netns, check_only=True)
    _run_batch(batch, netns)
    log.info("nftables %s %s: replaced, structure %s -> %s", family, name, _short(old), _short(new))
    return ApplyResult(family, name, "replaced", old, new)


def update_sets(commands: list[Json], netns: str | None = None) -> None:
    """Apply element ``add``/``delete`` commands (``ztos.policy.compile.diff_sets``) in one batch."""
    for command in commands:
        verb, body = next(iter(command.items()))
        if verb not in ("add", "delete") or set(body) != {"element"}:
            raise InvalidInput(
                f"update_sets takes element add/delete commands only, got {verb} {sorted(body)}"
            )
        _check_owned(body["element"]["table"])
    if commands:
        _run_batch(commands, netns)


def flush_table(family: str, name: str, netns: str | None = None) -> bool:
    """Remove a ZTOS table entirely (a detached tenant); False when it was not there."""
    _check_owned(name)
    try:
        _nft(["delete", "table", family, name], netns)
    except ToolError as exc:
        if any(text in exc.detail for text in _MISSING):
            return False
        raise
    log.info("nftables %s %s: removed", family, name)
    return True


# --- reads -------------------------------------------------------------------------------------


def list_ruleset(netns: str | None = None) -> Json:
    """The ZTOS-owned tables only, as nft prints them (handles and counters included)."""
    listed = _listing(["list", "ruleset"], netns)
    return {"nftables": [obj for obj in listed if _owned_object(obj)]}


def counters(family: str, table: str, netns: str | None = None) -> dict[str, tuple[int, int]]:
    """``{rule comment (or chain#handle): (packets, bytes)}``, summed over rules sharing a comment."""
    totals: dict[str, tuple[int, int]] = {}
    for obj in _listing(["list", "table", family, table], netns):
        rule = obj.get("rule")
        counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None) if rule else None
        if rule and isinstance(counter, dict):
            key = rule.get("comment") or f"{rule['chain']}#{rule['handle']}"
            packets, octets = totals.get(key, (0, 0))
            totals[key] = (packets + counter["packets"], octets + counter["bytes"])
    return totals


def installed_digest(family: str, table: str, netns: str | None = None) -> str | None:
    """The structure digest a ZTOS table carries, or None (absent table, or not one of ours)."""
    try:
        listed = _listing(["list", "chain", family, table, META_CHAIN], netns)
    except ToolError as exc:
        if any(text in exc.detail for text in _MISSING):
            return None
        raise
    return _digest_of(listed)


def set_elements(family: str, table: str, netns: str | None = None) -> dict[str, list[Any]]:
    """``{set name: elements}`` of one table as installed."""
    listed = _listing(["list", "sets", family], netns)
    sets = (obj["set"] for obj in listed if "set" in obj and obj["set"]["table"] == table)
    return {body["name"]: list(body.get("elem", [])) for body in sets}


def bridge_conntrack(netns: str | None = None) -> bool:
    """Whether bridged frames can use ``ct`` (``nf_conntrack_bridge``), probed in check mode.

    Without the module the kernel refuses a bridge-family ``ct`` expression with
    EPROTO ("Protocol error"); check mode (``nft -c``) changes nothing either way.
    """
    established = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}}
    where = {"family": "bridge", "table": "ztos-probe"}
    probe = [
        {"add": _table_obj("bridge", "ztos-probe")},
        {"add": {"chain": {**where, "name": "probe"}}},
        {"add": {"rule": {**where, "chain": "probe", "expr": [established, {"accept": None}]}}},
    ]
    try:
        _run_batch(probe, netns, check_only=True)
    except ToolError as exc:
        if "Protocol error" in exc.detail or "Operation not supported" in exc.detail:
            return False
        raise
    return True


# --- element reconciliation ----------------------------------------------------------------------


def _element_sync(family: str, table: str, objects: list[Json], netns: str | None) -> list[Json]:
    installed = set_elements(family, table, netns)
    deletes: list[Json] = []
    adds: list[Json] = []
    for body in (obj["set"] for obj in objects if "set" in obj):
        have = _keyed(installed.get(body["name"], []))
        want = _keyed(body.get("elem", []))
        _elements(
            deletes,
            "delete",
            family,
            table,
            body["name"],
            [have[k] for k in sorted(have.keys() - want.keys())],
        )
        _elements(
            adds, "add", family, table, body["name"], [want[k] for k in sorted(want.keys() - have.keys())]
        )
    return deletes + adds


def _keyed(elements: Iterable[Any]) -> dict[str, Any]:
    return {json.dumps(e, sort_keys=True): e for e in elements}


def _elements(into: list[Json], verb: str, family: str, table: str, name: str, elements: list[Any]) -> None:
    if elements:
        into.append({verb: {"element": {"family": family, "table": table, "name": name, "elem": elements}}})


# --- plumbing ------------------------------------------------------------------------------------


def _by_table(ruleset: Json) -> dict[tuple[str, str], list[Json]]:
    objects = ruleset.get("nftables")
    if not isinstance(objects, list):
        raise InvalidInput('a ruleset is {"nftables": [objects]}')
    tables: dict[tuple[str, str], list[Json]] = {}
    for obj in objects:
        if "table" in obj:
            _check_owned(obj["table"]["name"])
            tables[(obj["table"]["family"], obj["table"]["name"])] = [obj]
            continue
        body = next(iter(obj.values()))
        key = (body["family"], body["table"])
        if key not in tables:
            raise InvalidInput(f"{next(iter(obj))} {body.get('name', '')} comes before its table {key[1]}")
        tables[key].append(obj)
    return tables


def _digest_of(objects: Iterable[Json]) -> str | None:
    for obj in objects:
        rule = obj.get("rule")
        if rule and rule.get("chain") == META_CHAIN and str(rule.get("comment", "")).startswith(DIGEST_MARK):
            return str(rule["comment"])[len(DIGEST_MARK) :]
    return None


def _check_owned(table: str) -> None:
    if not table.startswith(OWNED_PREFIX):
        raise InvalidInput(
            f"table {table!r} is not ZTOS's (names start with {OWNED_PREFIX!r}); refusing to touch it"
        )


def _owned_object(obj: Json) -> bool:
    body = next(iter(obj.values()))
    name = body.get("name") if "table" in obj else body.get("table")
    return isinstance(body, dict) and isinstance(name, str) and name.startswith(OWNED_PREFIX)


def _table_obj(family: str, name: str) -> Json:
    return {"table": {"family": family, "name": name}}


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def _listing(args: list[str], netns: str | None) -> Iterator[Json]:
    output = _nft(["-j", *args], netns)
    listed = json.loads(output).get("nftables", []) if output.strip() else []
    return (obj for obj in listed if "metainfo" not in obj)


def _run_batch(commands: list[Json], netns: str | None, *, check_only: bool = False) -> None:
    flags = ["-c", "-j", "-f", "-"] if check_only else ["-j", "-f", "-"]
    _nft(flags, netns, stdin=json.dumps({"nftables": commands}))


def _nft(args: list[str], netns: str | None, stdin: str | None = None) -> str:
    argv = ["nft", *args]
    try:
        done = subprocess.run(
            netns_argv(argv, netns),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=NFT_TIMEOUT,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise ToolError(f"{' '.join(argv)}: {_first_lines(exc.stderr) or exc}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{' '.join(argv)}: {exc}") from exc
    return done.stdout


def _first_lines(text: str, limit: int = 12) -> str:
    """nft repeats one error per command of a batch: keep each distinct line once, and few."""
    lines = list(dict.fromkeys(line[:300] for line in text.strip().splitlines() if line.strip()))
    return "\n".join(
        lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])
    )
