"""Can a stage's trials be told apart? The noise of each figure, the trials within noise of
the best, stages without signal, and whether an edge value stands out. Pure functions over
plain numbers (no Optuna, no I/O).

The course's reading of a stage without signal (CS231n, "babysitting the learning process"):
every trial at chance with the loss not moving means the learning rate is too low (or nothing
reaches the model); NaN or exploding losses mean it is too high; trials all within noise of
each other mean these parameters do not matter here at this budget, or the evaluation set is
too small to tell them apart."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnexp import metrics
from cnnexp.noise import Z, binomial_se, noise_band, within_noise

SECONDARY = {"val_acc": "val_loss", "val_loss": "val_acc", "train_acc": "train_loss",
             "train_loss": "train_acc"}


def secondary(metric: str) -> str:
    """The metric that breaks exact ties: the loss for an accuracy, the accuracy for a loss."""
    return SECONDARY.get(metric, "val_loss")


def is_accuracy(metric: str) -> bool:
    return metric.endswith("_acc")


@dataclass(frozen=True)
class Point:
    """One trial as the analysis sees it."""

    number: int
    value: float  # the stage's metric (None-free: only completed trials are points)
    second: float = math.nan  # the secondary metric at the same epoch
    params: Mapping[str, Any] = field(default_factory=dict)


def rank(points: Sequence[Point], metric: str, direction: str) -> list[Point]:
    """Best first: by the metric, exact ties by the secondary metric, then trial number."""
    sign = 1 if direction == "maximize" else -1
    sign2 = 1 if metrics.higher_is_better(secondary(metric)) else -1

    def key(p: Point) -> tuple[float, float, int]:
        second = sign2 * p.second if math.isfinite(p.second) else -math.inf
        return (-sign * p.value, -second, p.number)

    return sorted(points, key=key)


@dataclass
class Signal:
    """A finished stage's verdict on its own trials."""

    metric: str
    eval_size: int | None  # validation examples each value was measured on
    classes: int | None
    best: float | None
    se: float  # binomial standard error of the best value (accuracy metrics), else NaN
    within: list[int]  # trial numbers within noise of the best (the best included)
    signal: bool  # False: the trials cannot be told apart; nothing to narrow around
    reading: str  # why not, and what to do (the course's reading); "" with signal
    completed: int
    diverged: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best_text(self) -> str:
        """`0.9972 ± 0.0028 (n=359)`: a value with its noise."""
        if self.best is None:
            return "-"
        if not math.isfinite(self.se) or not self.eval_size:
            return f"{self.best:.4f}"
        return f"{self.best:.4f} ± {self.se:.4f} (n={self.eval_size})"

    def noise_text(self) -> str:
        """One line for stage tables: noise, ties, signal."""
        if not self.signal:
            return f"no signal: {self.reading}"
        if not math.isfinite(self.se):
            return f"noise not estimated for {self.metric}"
        k = len(self.within)
        tied = f"{k} trials within noise of the best" if k > 1 else \
            "the best stands out from the rest"
        return f"best {self.best_text()}; {tied} (±{Z:g} SE)"


def analyse(ranked: Sequence[Point], *, metric: str, eval_size: int | None,
            classes: int | None, diverged: int = 0,
            last_train_losses: Sequence[float] = ()) -> Signal:
    """The stage's signal from its completed trials (best first) and how many diverged."""
    n = eval_size or 0
    best = ranked[0].value if ranked else None
    acc = is_accuracy(metric) and n > 0
    se = binomial_se(best, n) if acc and best is not None else math.nan
    within = [p.number for p in ranked if acc and best is not None
              and within_noise(best, p.value, n)] if acc else [p.number for p in ranked[:1]]
    base = Signal(metric, eval_size, classes, best, se, within, True, "", len(ranked), diverged)
    if not ranked:
        base.signal = False
        base.reading = (f"no trial completed ({diverged} diverged): losses exploded or went "
                        "NaN, so the learning rate is too high for the whole range — lower "
                        "it; `cnnexp sanity` checks the initial loss and gradients"
                        if diverged else "no trial completed")
        return base
    if acc and classes and all(_at_chance(p.value, classes, n) for p in ranked):
        base.signal = False
        base.reading = _chance_reading(classes, diverged, last_train_losses)
        return base
    if acc and len(ranked) >= 2 and len(within) == len(ranked):
        base.signal = False
        base.reading = (f"all {len(ranked)} trials lie within noise of the best "
                        f"({base.best_text()}): these parameters make no measurable "
                        "difference in these ranges at this budget, or the validation set is "
                        "too small to tell them apart — keep the ranges, train longer, or use "
                        "more validation data")
    return base


def _at_chance(value: float, classes: int, n: int) -> bool:
    chance = 1.0 / classes
    return value <= chance + Z * binomial_se(chance, n)


def _chance_reading(classes: int, diverged: int, losses: Sequence[float]) -> str:
    chance = f"chance level 1/{classes} = {1 / classes:.3f}"
    ln_c = math.log(classes)
    finite = [x for x in losses if math.isfinite(x)]
    if diverged or any(x > 3 * ln_c for x in finite) or len(finite) < len(losses):
        return (f"every trial at {chance}, with losses exploding or NaN: the learning rate is "
                "too high — lower the range (`cnnexp lr-find` suggests one)")
    if finite and all(abs(x - ln_c) < 0.1 * ln_c for x in finite):
        return (f"every trial at {chance} with the training loss stuck at ln C = {ln_c:.2f}: "
                "the loss is not moving — the learning rate is too low, or nothing reaches the "
                "model; run `cnnexp sanity` (initial loss, gradient flow, overfit a tiny set)")
    return (f"every trial at {chance}: nothing was learned — check the learning-rate range "
            "(`cnnexp lr-find`) and run `cnnexp sanity`")


def edge_stands_out(path: str, side: str, best: Point, points: Sequence[Point], *,
                    metric: str, direction: str, eval_size: int | None,
                    in_edge: Callable[[Any], bool]) -> bool:
    """Is the best value at this edge better than the best trial away from it, beyond noise?
    A flat response (the interior as good within noise) is not a finding. With no trial away
    from the edge, or no noise estimate, there is nothing to compare: it counts."""
    interior = [p for p in points if path in p.params and not in_edge(p.params[path])]
    if not interior or not (is_accuracy(metric) and eval_size):
        return True
    ranked = rank(interior, metric, direction)
    return not within_noise(best.value, ranked[0].value, eval_size)


def top_gap_text(ranked: Sequence[Point], eval_size: int | None, k: int = 3) -> str:
    """`0.9972 / 0.9944 / 0.9916: within noise (±0.0052)` for the console and descriptions."""
    values = [p.value for p in ranked[:k]]
    if len(values) < 2 or not eval_size:
        return ""
    band = noise_band(values[0], values[-1], eval_size)
    same = abs(values[0] - values[-1]) <= band
    shown = " / ".join(f"{v:.4f}" for v in values)
    return f"top {len(values)}: {shown} — " + (f"within noise of each other (±{band:.4f})"
                                                 if same else f"apart by more than ±{band:.4f}")
