"""Ablation table statistics as pure functions: mean ± std over seeds, Δ, Welch's t-test,
a plain verdict, and the train–val gap. No torch, no MLflow.

Verdict rule (documented in docs/ablate.md): compare a row with the row it is measured
against (the reference row; in cumulative mode the previous row). With p < alpha (Welch's
two-sided t-test over seeds) the row `helps` if Δ points the good way for the metric and
`hurts` otherwise; with p >= alpha it is `within noise`; with fewer than 2 finished seeds on
either side there is no test and the verdict is `n/a`. Any diverged seed makes it `diverged`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from cnnexp.diagnose.rules import consensus
from cnnexp.noise import mean_std, verdict, welch_p

__all__ = ["REFERENCE", "Row", "SeedResult", "mean_std", "summarize", "verdict", "welch_p"]

REFERENCE = "reference"


@dataclass(frozen=True)
class SeedResult:
    """What one finished arm × seed run contributes to the table."""

    value: float  # the ablation metric
    train_acc: float
    val_acc: float
    status: str = "completed"
    params: int = 0
    seconds: float = 0.0
    run_id: str = ""
    reused: bool = False
    diagnosis: str = ""  # learning-curve verdict (cnnexp.diagnose)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged" or not math.isfinite(self.value)

    @property
    def gap(self) -> float:
        return self.train_acc - self.val_acc


@dataclass
class Row:
    arm: str
    n: int  # finished (non-diverged) seeds the statistics are computed from
    seeds: int  # seeds run
    diverged: int
    mean: float
    std: float
    delta: float  # vs `compared_to`
    delta_baseline: float  # vs the reference row (same as delta outside cumulative mode)
    p_value: float
    verdict: str
    train_val_gap: float
    gap_change: float
    params: int
    seconds: float
    compared_to: str = ""
    lr: float | None = None
    values: list[float] = field(default_factory=list)
    diagnosis: str = ""  # the seeds' learning-curve verdicts, e.g. "healthy", "overfitting 2/3"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summarize(arms: Sequence[tuple[str, Sequence[SeedResult]]], *, higher_is_better: bool = True,
              alpha: float = 0.05, cumulative: bool = False,
              lrs: Sequence[float | None] | None = None) -> list[Row]:
    """One Row per arm, in order; the first arm is the reference. In cumulative mode each row
    is compared with the previous one (its own change), and delta_baseline is vs the first."""
    rows: list[Row] = []
    finished_by_arm: list[list[SeedResult]] = []
    for i, (label, results) in enumerate(arms):
        finished = [r for r in results if not r.diverged]
        finished_by_arm.append(finished)
        values = [r.value for r in finished]
        mean, std = mean_std(values)
        gap = _mean([r.gap for r in finished])
        row = Row(arm=label, n=len(finished), seeds=len(results),
                  diverged=len(results) - len(finished), mean=mean, std=std, delta=math.nan,
                  delta_baseline=math.nan, p_value=math.nan, verdict=REFERENCE,
                  train_val_gap=gap, gap_change=math.nan,
                  params=max((r.params for r in results), default=0),
                  seconds=_mean([r.seconds for r in results if not r.reused]
                                or [r.seconds for r in results]),
                  lr=lrs[i] if lrs else None, values=values,
                  diagnosis=consensus([r.diagnosis for r in results]))
        if i > 0:
            j = i - 1 if cumulative else 0
            other = rows[j]
            row.compared_to = other.arm
            row.delta = mean - other.mean
            row.delta_baseline = mean - rows[0].mean
            row.gap_change = gap - other.train_val_gap
            row.p_value = welch_p(values, [r.value for r in finished_by_arm[j]])
            row.verdict = verdict(row.delta, row.p_value, higher_is_better, alpha)
        if row.diverged:
            row.verdict = "diverged"
        rows.append(row)
    return rows
