"""Data-plane areas run independently (``ztos.agent.areas``): one failing never stops the others."""

from __future__ import annotations

from ztos.agent.areas import BACKOFF_MAX, Area, Backoff, Outcome, plan, reconcile
from ztos.errors import ToolError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_area_leaves_the_others_reconciled_and_is_retried_with_backoff() -> None:
    done: list[str] = []
    broken = {"routing"}

    def apply(name: str) -> list[str]:
        if name in broken:
            raise ToolError("vtysh: line 3: % Unknown command: neighbor x remote-as")
        done.append(name)
        return [f"~ {name}"]

    names = ["wireguard", "routing", "policy"]
    areas = [Area(n, lambda n=n: apply(n), lambda: []) for n in names]  # type: ignore[misc]
    clock = Clock()
    backoff = Backoff(clock)
    first = reconcile(areas, backoff)
    assert [o.state for o in first] == ["changed", "failed", "changed"]
    assert done == ["wireguard", "policy"], "the area after the failing one ran too"
    assert first[1].retry_in == 1.0 and "Unknown command" in first[1].detail
    clock.now += 0.5
    assert reconcile(areas, backoff)[1].state == "waiting", "not retried before its backoff"
    delays = []
    for _ in range(10):
        clock.now += BACKOFF_MAX
        delays.append(reconcile(areas, backoff)[1].retry_in)
    assert delays[:3] == [2.0, 4.0, 8.0] and max(delays) == BACKOFF_MAX
    broken.clear()
    clock.now += BACKOFF_MAX
    assert [o.state for o in reconcile(areas, backoff)] == ["changed"] * 3
    assert backoff.waiting("routing") is None, "success forgets the backoff"


def test_plan_reports_every_area_converged_or_its_operations() -> None:
    areas = [
        Area("wireguard", lambda: [], lambda: []),
        Area("policy", lambda: [], lambda: ["~ nft inet ztos-host: replace"]),
        Area("routing", lambda: [], lambda: (_ for _ in ()).throw(ToolError("vtysh not found"))),
    ]
    lines = [line for outcome in plan(areas) for line in outcome.lines()]
    assert lines == [
        "wireguard: converged",
        "policy: ~ nft inet ztos-host: replace",
        "routing: failed: vtysh not found [tool_error]",
    ]
    assert Outcome("tenants", "waiting", detail="x", retry_in=4).lines() == [
        "tenants: failed earlier: x (retry in 4 s)"
    ]


def test_an_os_error_an_adapter_let_through_fails_only_its_area() -> None:
    def taken() -> list[str]:
        raise FileExistsError(17, "File exists", "/var/run/frr/ztos")

    areas = [Area("routing", taken, lambda: []), Area("policy", lambda: ["~ nft"], lambda: [])]
    outcomes = reconcile(areas, Backoff(Clock()))
    assert [o.state for o in outcomes] == ["failed", "changed"]
    assert outcomes[0].detail == "File exists: /var/run/frr/ztos"
