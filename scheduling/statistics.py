"""Nearest-rank percentiles, once: the Python side (maintenance's daily
statistics) and the database side (selectors' p95 by OFFSET) pick the same
element through ``nearest_rank_index``."""
from __future__ import annotations

import math
from fractions import Fraction


def nearest_rank_index(count: int, fraction: float | Fraction) -> int:
    """0-based position of the nearest-rank percentile among ``count`` sorted
    values: rank ⌈fraction·count⌉ (1-based), clamped to the values there are.

    The product is exact (``0.95`` is read as 19/20, not as the binary float
    just below it), so an exact multiple such as 95% of 20 is rank 19, not 20.
    """
    exact = fraction if isinstance(fraction, Fraction) else Fraction(str(fraction))
    return max(0, min(count - 1, math.ceil(exact * count) - 1))


def nearest_rank_percentile(values: list[float], percent: int) -> float | None:
    """The ``percent``-th percentile by nearest rank: the smallest value with at
    least ``percent``% of the values at or below it; None without values."""
    if not values:
        return None
    return sorted(values)[nearest_rank_index(len(values), Fraction(percent, 100))]
