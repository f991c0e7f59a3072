"""Does a cheap stage predict the expensive one? A staged search trusts its coarse stage's
ranking (few epochs, a subset of the data) to pick what the fine stage trains at the full
budget. The configurations a stage re-trains from the one before it (promotion) have a value
at both budgets; their rank correlation says whether that trust was earned. Pure functions
over plain numbers (no Optuna, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnexp.noise import within_noise

Z90 = 1.645  # a 90% interval: the check is a warning light, not a test
CARRIES = 0.3  # below this Spearman rho the cheap ranking is read as not carrying
MIN_PAIRS = 3


@dataclass(frozen=True)
class Pair:
    """One configuration trained at both budgets; `expensive` is None when the trial was
    pruned or diverged at the expensive budget (it then ranks below every finished one)."""

    cheap_trial: int
    trial: int
    cheap: float
    expensive: float | None


@dataclass
class Fidelity:
    cheap_stage: str
    stage: str
    pairs: list[Pair] = field(default_factory=list)
    rho: float = math.nan
    low: float = math.nan
    high: float = math.nan
    verdict: str = "too few"  # carries | does not carry | within noise | too few
    text: str = ""
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho with average ranks for ties; NaN when either side is constant."""
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def interval(rho: float, n: int) -> tuple[float, float]:
    """90% interval for Spearman's rho: Fisher's z with Bonett and Wright's variance
    (1 + rho^2 / 2) / (n - 3); the whole [-1, 1] below four pairs."""
    if n <= 3 or not math.isfinite(rho):
        return -1.0, 1.0
    r = max(min(rho, 0.9999), -0.9999)
    z, se = math.atanh(r), math.sqrt((1 + r * r / 2) / (n - 3))
    return math.tanh(z - Z90 * se), math.tanh(z + Z90 * se)


def check(pairs: Sequence[Pair], *, cheap_stage: str, stage: str, maximize: bool,
          eval_size: int | None, accuracy: bool) -> Fidelity:
    """The verdict and its words. Pairs are compared as 'goodness' (the metric, negated for a
    loss); a configuration that did not finish at the expensive budget ranks last there."""
    f = Fidelity(cheap_stage, stage, list(pairs))
    n = len(pairs)
    what = f"{cheap_stage} -> {stage}"
    if n < MIN_PAIRS:
        f.text = (f"{what}: {n} configuration(s) trained at both budgets; at least "
                  f"{MIN_PAIRS} are needed to tell whether the {cheap_stage} ranking carries "
                  f"(raise search.stages.{stage}.promote)")
        return f
    sign = 1.0 if maximize else -1.0
    cheap = [sign * p.cheap for p in pairs]
    dear = [sign * p.expensive if p.expensive is not None else -math.inf for p in pairs]
    finished = [p.expensive for p in pairs if p.expensive is not None]
    if accuracy and eval_size and len(finished) == n and \
            within_noise(max(finished), min(finished), eval_size):
        f.verdict = "within noise"
        f.text = (f"{what}: the {n} promoted configurations lie within noise of each other at "
                  f"the {stage} budget ({min(finished):.4f}-{max(finished):.4f}, n={eval_size}): "
                  f"their order there cannot be read, and any of them was a good pick")
        return f
    f.rho = spearman(cheap, dear)
    f.low, f.high = interval(f.rho, n)
    band = f"Spearman rho {f.rho:+.2f}, 90% interval [{f.low:+.2f}, {f.high:+.2f}], " \
           f"{n} configurations"
    if math.isfinite(f.rho) and f.rho >= CARRIES:
        f.verdict = "carries"
        f.text = f"{what}: the {cheap_stage} ranking carried to the {stage} stage ({band})"
    else:
        f.verdict = "does not carry"
        f.text = f"{what}: the {cheap_stage} ranking did not carry to the {stage} stage ({band})"
        f.warning = (f"{cheap_stage} rankings did not carry to the {stage} stage ({band}): "
                     f"raise search.stages.{cheap_stage}.epochs or subset")
    return f
