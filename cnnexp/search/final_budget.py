"""`search.final_budget: 20m`: best.yaml trains for as many epochs as fit that much time on
this machine, instead of the recipe's own train.epochs.

A search ranks configurations on short runs; the final model is trained once, for as long as
the user can wait. So the time a user grants the final run is spent on epochs of the tuned
configuration, which the search cannot know in advance: a wider network or a smaller batch
makes each epoch slower. The epoch time is measured, not guessed. The confirming stage trains
the tuned configuration on all the training data and validates it as the final run will, so
its seconds per epoch are the final run's own; without a confirming stage (`--no-confirm`, or
it did not fit the search budget) a short probe of the tuned recipe gives them
(search/budget.measure). A fixed allowance covers what a final run does beside its epochs
(loading data, the test pass, logging the model)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

FINAL_OVERHEAD = 30.0  # seconds of a final run outside its epochs
MAX_EPOCHS = 1000  # a typo-sized budget (30 days of 1-second epochs) stops here


@dataclass(frozen=True)
class FinalPlan:
    budget: float  # seconds the final run may take
    epoch_seconds: float  # one epoch of the tuned configuration on all the training data
    epochs: int
    source: str  # where epoch_seconds comes from

    def line(self) -> str:
        fits = "fit" if self.epochs > 1 or self.fits_one else "do not fit; trains 1 anyway"
        return (f"final budget: {self.epochs} epoch(s) {fits} in {self.budget / 60:.1f} min "
                f"({self.epoch_seconds:.0f} s per epoch, measured in {self.source})")

    @property
    def fits_one(self) -> bool:
        return FINAL_OVERHEAD + self.epoch_seconds <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "epoch_seconds": round(self.epoch_seconds, 2)}


def epochs_for(budget: float, epoch_seconds: float) -> int:
    """Whole epochs that fit the budget after the fixed allowance (at least one)."""
    if not math.isfinite(epoch_seconds) or epoch_seconds <= 0:
        raise ValueError(f"epoch time must be positive, got {epoch_seconds}")
    return int(min(MAX_EPOCHS, max(1, (budget - FINAL_OVERHEAD) // epoch_seconds)))


def epoch_seconds_of(runs: Sequence[tuple[float, int]]) -> float | None:
    """Mean seconds per epoch of (seconds, epochs) runs that trained at least one epoch."""
    rates = [s / e for s, e in runs if e > 0 and math.isfinite(s) and s > 0]
    return sum(rates) / len(rates) if rates else None


def plan_final(budget: float, confirmed: dict[str, Any] | None, probe: Any) -> FinalPlan:
    """The final run's epochs: from the confirming stage's runs of the tuned configuration when
    it ran (and recorded them), else from `probe()` -> seconds per epoch."""
    seconds = (confirmed or {}).get("best", {}).get("epoch_seconds")
    source = "the confirming stage's runs of the tuned configuration"
    if not (seconds and math.isfinite(seconds) and seconds > 0):
        seconds, source = probe(), "a short probe of the tuned configuration"
    return FinalPlan(budget, seconds, epochs_for(budget, seconds), source)
