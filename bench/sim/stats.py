"""Nearest-rank percentiles and the summaries every figure uses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank (the value below which ``pct`` % of the samples lie); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Samples:
    """Durations in seconds, in the order they were taken."""

    values_s: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values_s.append(seconds)

    def ms(self, pct: float) -> float:
        return percentile(self.values_s, pct) * 1000

    def summary(self) -> dict[str, Any]:
        if not self.values_s:
            return {"n": 0}
        return {
            "n": len(self.values_s),
            "p50_ms": round(self.ms(50), 2),
            "p99_ms": round(self.ms(99), 2),
            "max_ms": round(max(self.values_s) * 1000, 2),
        }


def ratio(value: float, base: float) -> float | None:
    if not base or math.isnan(base) or math.isnan(value):
        return None
    return round(value / base, 2)
