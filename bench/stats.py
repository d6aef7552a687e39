"""Percentiles and ratios, without numpy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def merge_rounds(rounds: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The per-key median of numeric results over rounds (counts are summed)."""
    merged: dict[str, float] = {}
    for key in rounds[0]:
        values = [float(r[key]) for r in rounds if isinstance(r.get(key), int | float)]
        if not values:
            continue
        merged[key] = sum(values) if key in ("requests", "errors") else median(values)
    return merged
