"""``decide``: would this flow pass, and which rule says so (``ztos policy test``).

Pure: (policy, snapshot, flow, time) -> Decision. It walks the same clauses
and membership indexes the compiler turns into nftables sets
(``ztos.policy.resolve``), so its answer is what the packets do; the
integration suite checks that on hundreds of random flows. A denial names
the *closest* rule (the one failing the fewest checks) and what it lacked,
which is usually the fix; a rule that names both ends is closer than one
that does not, whatever else it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ztos.errors import InvalidInput
from ztos.policy.model import Policy, Selector, TimeCondition
from ztos.policy.resolve import Clause, Resolver, attr_conditions, clauses, in_window, time_conditions
from ztos.policy.snapshot import Ident, Snapshot


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None
    reason: str

    def __str__(self) -> str:
        return f"{'ALLOW' if self.allowed else 'DENY'}: {self.reason}"


@dataclass
class _Verdict:
    clause: Clause
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    strangers: int = 0  # failed identity checks: they weigh more than a port or a condition

    def note(self, ok: bool, text: str, identity: bool = False) -> None:
        (self.passed if ok else self.failed).append(text)
        self.strangers += identity and not ok

    @property
    def distance(self) -> tuple[int, int]:
        return self.strangers, len(self.failed)


def decide(
    policy: Policy,
    snapshot: Snapshot,
    src: str,
    dst: str,
    proto: str,
    port: int | None,
    now: datetime,
    resolver: Resolver | None = None,
) -> Decision:
    """Whether ``src`` may reach ``dst`` on ``proto``/``port`` at ``now``, and why.

    ``src``/``dst`` are identity names (``fin1``, ``workload:fin1``, ``node:h1``);
    pass a ``resolver`` to reuse its indexes over many questions.
    """
    _check_flow(proto, port)
    source, target = snapshot.identity(src), snapshot.identity(dst)
    blocked = _no_path(snapshot, source, target)
    if blocked is not None:
        return blocked
    resolver = resolver or Resolver(policy, snapshot)
    verdicts = [_judge(resolver, c, source, target, proto, port, now) for c in clauses(policy)]
    for verdict in verdicts:
        if not verdict.failed:
            return Decision(
                True, verdict.clause.rule.name, f"{_title(verdict.clause)}: " + "; ".join(verdict.passed)
            )
    if not verdicts:
        return Decision(False, None, "default deny: the policy has no rules")
    closest = min(verdicts, key=lambda v: v.distance)
    detail = "; ".join(closest.failed)
    return Decision(
        False, None, f"default deny: no rule matched; closest: {_title(closest.clause)}: {detail}"
    )


def _check_flow(proto: str, port: int | None) -> None:
    if proto in ("tcp", "udp"):
        if port is None or not 1 <= port <= 65535:
            raise InvalidInput(f"{proto} needs a port 1-65535, got {port}")
    elif proto == "icmp":
        if port is not None:
            raise InvalidInput("icmp takes no port")
    else:
        raise InvalidInput(f"protocol {proto!r}: use tcp, udp or icmp")


def _no_path(snapshot: Snapshot, source: Ident, target: Ident) -> Decision | None:
    """Flows the network cannot carry at all, whatever the policy says."""
    if source == target:
        return Decision(True, None, f"{source[1]} talking to itself never leaves it; policy does not apply")
    if source[0] != target[0]:
        return Decision(False, None, "no path: workloads (tenant segments) and nodes (the mesh) never meet")
    if source[0] == "workload":
        ours, theirs = snapshot.workloads[source[1]].tenant, snapshot.workloads[target[1]].tenant
        if ours != theirs:
            return Decision(False, None, f"no path: {source[1]} is in tenant {ours}, {target[1]} in {theirs}")
    return None


def _judge(
    resolver: Resolver,
    clause: Clause,
    source: Ident,
    target: Ident,
    proto: str,
    port: int | None,
    now: datetime,
) -> _Verdict:
    verdict = _Verdict(clause)
    rule = clause.rule
    for window in time_conditions(rule):
        verdict.note(in_window(window, now), _window_text(window, now))
    why = resolver.why(rule.source, source)
    verdict.note(why is not None, why or f"{source[1]} is not in {describe(rule.source)}", identity=True)
    for condition in attr_conditions(rule, "src"):
        verdict.note(*resolver.check(condition, source))
    why = resolver.why(clause.dst, target)
    verdict.note(why is not None, why or f"{target[1]} is not in {describe(clause.dst)}", identity=True)
    for condition in attr_conditions(rule, "dst"):
        verdict.note(*resolver.check(condition, target))
    flow = proto if port is None else f"{proto}/{port}"
    ports = ", ".join(str(p) for p in clause.ports)
    inside = any(p.covers(proto, port) for p in clause.ports)
    verdict.note(inside, f"{flow} {'is' if inside else 'is not'} in [{ports}]")
    return verdict


def _title(clause: Clause) -> str:
    line = f" (line {clause.rule.line})" if clause.rule.line else ""
    service = f" service {clause.service}" if clause.service else ""
    return f"rule {clause.rule.name!r}{line}{service}"


def _window_text(window: TimeCondition, now: datetime) -> str:
    state = "open" if in_window(window, now) else "closed"
    return f"time window {window.time} {','.join(window.days)} {window.tz} is {state} at {now.isoformat()}"


def describe(selector: Selector) -> str:
    """``group finance, service db`` or ``*``."""
    if selector.any:
        return "*"
    parts = []
    for kind in ("workloads", "nodes", "users", "groups", "roles", "tags", "tenants", "services"):
        for name in getattr(selector, kind):
            parts.append(f"{kind.rstrip('s')} {name}")
    return "[" + ", ".join(parts) + "]"
