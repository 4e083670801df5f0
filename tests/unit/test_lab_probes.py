"""The lab's data-plane probes, without root: what they read from nftables, and their timing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ztos.errors import ToolError
from ztos.lab import probes
from ztos.lab.topology import LabTopology

RULESET: dict[str, Any] = {
    "nftables": [
        {"table": {"family": "inet", "name": "ztos-host"}},
        {"rule": {"table": "ztos-host", "chain": "ztos_v4", "comment": "r1 web"}},
        {"rule": {"table": "ztos-host", "chain": "ztos_v6", "comment": "r2 zhb-1a2b"}},
        {"rule": {"table": "ztos-host", "chain": "input", "comment": "wireguard"}},
        {"rule": {"table": "ztos-host", "chain": "input"}},
        {"rule": {"table": "ztos-t-corp", "chain": "forward", "comment": "r1 tenant-rule"}},
    ]
}


def test_rule_names_are_the_policy_rules_of_the_host_table(monkeypatch: pytest.MonkeyPatch) -> None:
    host = LabTopology("demo", 1).host(1)
    seen: list[str | None] = []

    def listing(netns: str | None = None) -> dict[str, Any]:
        seen.append(netns)
        return RULESET

    monkeypatch.setattr(probes.nftables, "list_ruleset", listing)
    assert probes.rule_names(host) == {"web", "zhb-1a2b"}
    assert seen == [host.netns]


def test_a_probe_notes_when_its_condition_first_held_and_a_failing_read_is_not_yet() -> None:
    answers = iter([ToolError("table being swapped"), False, True])

    def condition() -> bool:
        answer = next(answers, True)
        if isinstance(answer, Exception):
            raise answer
        return answer

    start = time.time()
    probe = probes.Probe(condition, timeout=5)
    seen = probe.wait()
    assert seen is not None and start <= seen <= time.time()
    assert probes.seconds_after(seen + 1, [probe]) == [0.0], "already there when the call returned"
    assert probes.seconds_after(start, [probe])[0] == pytest.approx(seen - start)


def test_a_probe_that_never_sees_its_condition_gives_up_at_its_timeout() -> None:
    started = time.monotonic()
    probe = probes.Probe(lambda: False, timeout=0.2)
    assert probes.seconds_after(time.time(), [probe]) == [None]
    assert time.monotonic() - started < 2
