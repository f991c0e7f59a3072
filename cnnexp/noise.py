"""How much a measured figure moves by chance: the yardstick every comparison carries.

One evaluation: an accuracy on n examples has the binomial standard error sqrt(p(1-p)/n).
Several seeds: mean ± sample std, Welch's two-sided t-test between two sets of seeds, and a
paired t-test (with the smallest difference it could detect) when the seeds are matched.
Two accuracies on the same evaluation set are "within noise" when they differ by less than
Z = 2 combined standard errors (about a 95% band)."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence

Z = 2.0


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent examples: sqrt(p(1-p)/n)."""
    if n <= 0 or not math.isfinite(accuracy):
        return math.nan
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


def noise_band(a: float, b: float, n: int) -> float:
    """How far apart two accuracies on the same n examples may lie by chance (Z combined SEs;
    at least one example's worth, 1/n, so two equal perfect scores are not "far apart")."""
    band = Z * math.hypot(binomial_se(a, n), binomial_se(b, n))
    return max(band, 1.0 / n) if n > 0 else math.nan


def within_noise(a: float, b: float, n: int) -> bool:
    return abs(a - b) <= noise_band(a, b, n)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); std is NaN below two values."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    mean = statistics.fmean(vals)
    return mean, statistics.stdev(vals) if len(vals) > 1 else math.nan


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value; NaN with fewer than 2 values on a side. Two constant
    samples: 1.0 if they are equal, else 0.0 (scipy would give NaN / a warning)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if sa == 0 and sb == 0:
        return 1.0 if ma == mb else 0.0
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(list(a), list(b), equal_var=False).pvalue)


def verdict(delta: float, p_value: float, higher_is_better: bool = True,
            alpha: float = 0.05) -> str:
    """helps / hurts (p < alpha, by the sign of delta), within noise, or n/a (no test)."""
    if not (math.isfinite(p_value) and math.isfinite(delta)):
        return "n/a"
    if p_value >= alpha or delta == 0:
        return "within noise"
    return "helps" if (delta > 0) == higher_is_better else "hurts"


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value over matched values (seed i of a against seed i of b):
    what the seed moves in both arms cancels out. NaN below two pairs; constant differences:
    1.0 if they are all zero, else 0.0."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if len(diffs) < 2:
        return math.nan
    mean, std = mean_std(diffs)
    if std == 0:
        return 1.0 if mean == 0 else 0.0
    from scipy import stats

    t = mean / (std / math.sqrt(len(diffs)))
    return float(2 * stats.t.sf(abs(t), len(diffs) - 1))


def detectable(diffs: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a paired t-test over these pairs would detect with the
    given power at the observed spread: (t_{1-alpha/2} + t_{power}) x sd / sqrt(n), with n - 1
    degrees of freedom. NaN below two pairs."""
    n = len(diffs)
    if n < 2:
        return math.nan
    _, std = mean_std(diffs)
    from scipy import stats

    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1))
                 * std / math.sqrt(n))
