"""How much a measured figure moves by chance: the yardstick every comparison carries."""

from __future__ import annotations

import math


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent examples: sqrt(p(1-p)/n)."""
    if n <= 0 or not math.isfinite(accuracy):
        return math.nan
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)
