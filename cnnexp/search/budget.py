"""`cnnexp search --budget 30m`: plan the search to fit a wall-clock budget on this machine.

The cost of a trial is predicted from a short measurement of the recipe on this device (a few
training steps and one validation pass: seconds per training image and per evaluated image),
times each stage's epochs and images, plus a fixed cost per trial. The plan keeps each stage's
epochs and training subset (they define the study: changing them would start a new one on
resume) and sets what can move: the number of trials per stage (scaled together from the
recipe's counts), and the confirming stage's seeds (at least two; dropped, and said so, when
even two do not fit). The search then keeps to it: a stage whose next trial would end past the
deadline skips its remaining tickets, a stage that would start past it is not started, and the
confirming stage runs only if it fits in what is left. Each stage's deadline keeps the planned
time of the stages after it and of the confirming stage, so a stage that runs long cuts its own
trials, not the evidence. So the search ends within the budget
plus about one trial's time (configurations cost more or less than the recipe measured: a
wider network or a smaller batch is slower)."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from cnnexp.errors import BadInput
from cnnexp.search.config import Plan

TRIAL_OVERHEAD = 0.6  # seconds per trial outside training: MLflow run, recipe, bookkeeping
SEARCH_OVERHEAD = 8.0  # seconds per search: storage, parent run, results, plots
CONFIRM_SHARE = 0.45  # the confirming stage (the evidence) may take at most this share
MAX_SCALE = 5.0  # trials beyond 5x the recipe's counts add little: the rest is left unused
MIN_TRIALS = {0: 4}  # the first stage needs a few trials to narrow from; later stages 2


def parse_budget(text: str, option: str = "--budget") -> float:
    """`90s`, `30m`, `1.5h`, `1h30m` -> seconds (`option` names it in errors)."""
    raw = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", raw)
    if not raw or not parts or "".join(n + u for n, u in parts) != raw:
        raise BadInput(f"{option} {text!r}: give a duration with units, e.g. 90s, 30m, 1.5h "
                       "or 1h30m")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not 10 <= seconds <= 30 * 24 * 3600:
        raise BadInput(f"{option} {text!r}: must be from 10s to 30 days")
    return seconds


@dataclass(frozen=True)
class Rates:
    """Measured on this device with the recipe as written."""

    train: float  # seconds per training image (forward, backward, step, augmentation)
    evaluate: float  # seconds per evaluated image and view
    n_train: int
    n_val: int
    views: int  # 2 with flip TTA (confirming runs), trials use 1
    probe_seconds: float

    def run_seconds(self, epochs: int, images: int, views: int = 1) -> float:
        return epochs * (images * self.train + self.n_val * views * self.evaluate) \
            + TRIAL_OVERHEAD


def measure(recipe: Any, device: Any, steps: int = 8, windows: int = 3) -> Rates:
    """Training steps and validation passes of the recipe (after warm-up), the fastest of a few
    windows each: a one-off stall should not scale the whole plan."""
    import torch

    from cnnexp.data import build_data
    from cnnexp.engine.trainer import Trainer

    t0 = time.perf_counter()
    data = build_data(recipe).to(device)
    trainer = Trainer(recipe, data, device)
    trainer.model.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = _cycle(trainer)
    for _ in range(2):  # warm-up: first-call costs are not per-image costs
        trainer.train_step(*next(batches))
    views = 2 if recipe.aug.tta else 1
    train = evaluate = math.inf
    for _ in range(windows):  # each window's steps change the weights: a fresh evaluation
        trainer.model.train()
        sync()
        start, seen = time.perf_counter(), 0
        for _ in range(steps):
            xb, yb = next(batches)
            trainer.train_step(xb, yb)
            seen += len(yb)
        sync()
        train = min(train, (time.perf_counter() - start) / max(seen, 1))
        start = time.perf_counter()
        trainer.evaluate()
        sync()
        evaluate = min(evaluate, (time.perf_counter() - start) / max(data.n_val * views, 1))
        if time.perf_counter() - t0 > 20:  # a large validation set: one pass says enough
            break
    return Rates(train, evaluate, data.n_train, data.n_val, views,
                 time.perf_counter() - t0)


def _cycle(trainer: Any) -> Any:
    while True:
        yield from trainer.train_batches


@dataclass
class StageBudget:
    name: str
    trials: int
    requested: int
    epochs: int
    images: int
    trial_seconds: float

    @property
    def seconds(self) -> float:
        return self.trials * self.trial_seconds


@dataclass
class BudgetPlan:
    budget: float
    rates: Rates
    stages: list[StageBudget]
    confirm_seeds: int  # 0: dropped
    confirm_epochs: int
    confirm_run_seconds: float
    dropped: list[str] = field(default_factory=list)

    @property
    def confirm_seconds(self) -> float:
        return 2 * self.confirm_seeds * self.confirm_run_seconds

    @property
    def seconds(self) -> float:
        return SEARCH_OVERHEAD + self.rates.probe_seconds + self.confirm_seconds + sum(
            s.seconds for s in self.stages)

    def lines(self) -> list[str]:
        """The plan as printed before the search starts."""
        r = self.rates
        out = [f"budget {_minutes(self.budget)}: measured {1 / r.train:,.0f} training images/s"
               f" and {1 / r.evaluate:,.0f} evaluated images/s on this machine "
               f"({r.probe_seconds:.0f} s)"]
        for s in self.stages:
            change = "" if s.trials == s.requested else f" (recipe: {s.requested})"
            out.append(f"  {s.name}: {s.trials} trials{change} x {s.epochs} epoch(s) on "
                       f"{s.images:,} images, ~{s.trial_seconds:.0f} s each = "
                       f"{_minutes(s.seconds)}")
        if self.confirm_seeds:
            out.append(f"  confirm: 2 arms x {self.confirm_seeds} seeds x {self.confirm_epochs} "
                       f"epoch(s) on {r.n_train:,} images = {_minutes(self.confirm_seconds)}")
        out.append(f"  planned {_minutes(self.seconds)} of {_minutes(self.budget)}; each stage"
                   " keeps to its share: a trial that would end past it is not started")
        out += [f"  dropped to fit: {d}" for d in self.dropped]
        return out

    def stage_ends(self, deadline: float) -> dict[str, float]:
        """When each stage must end so that the stages after it and the confirming stage keep
        their planned time: a stage whose trials cost more than measured (a wider network, a
        smaller batch) runs fewer of them instead of crowding out the evidence."""
        ends, later = {}, self.confirm_seconds
        for s in reversed(self.stages):
            ends[s.name] = deadline - later
            later += s.seconds
        return ends

    def to_dict(self) -> dict[str, Any]:
        return {"budget_seconds": self.budget, "planned_seconds": round(self.seconds, 1),
                "train_images_per_sec": round(1 / self.rates.train, 1),
                "eval_images_per_sec": round(1 / self.rates.evaluate, 1),
                "stages": {s.name: {"trials": s.trials, "requested": s.requested,
                                    "trial_seconds": round(s.trial_seconds, 1)}
                           for s in self.stages},
                "confirm_seeds": self.confirm_seeds, "dropped": self.dropped}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def make_plan(plan: Plan, budget: float, rates: Rates, confirm: bool, confirm_epochs: int,
              confirm_seeds: int) -> BudgetPlan:
    """Trials per stage and confirm seeds that fit `budget` seconds (BadInput when even the
    smallest search does not)."""
    stages = [StageBudget(s.name, s.trials, s.trials, s.epochs,
                          min(s.subset or rates.n_train, rates.n_train),
                          rates.run_seconds(s.epochs, min(s.subset or rates.n_train,
                                                          rates.n_train)))
              for s in plan.stages]
    run = rates.run_seconds(confirm_epochs, rates.n_train, rates.views)
    bp = BudgetPlan(budget, rates, stages, max(2, confirm_seeds) if confirm else 0,
                    confirm_epochs, run)
    fixed = SEARCH_OVERHEAD + rates.probe_seconds
    minimum = sum(max(MIN_TRIALS.get(i, 2), 1) * s.trial_seconds for i, s in enumerate(stages))
    if confirm:
        while bp.confirm_seeds > 2 and bp.confirm_seconds > CONFIRM_SHARE * budget:
            bp.confirm_seeds -= 1
        if bp.confirm_seconds > CONFIRM_SHARE * budget or \
                fixed + minimum + bp.confirm_seconds > budget:
            bp.dropped.append(f"the confirming stage (2 seeds x 2 arms need "
                              f"{_minutes(bp.confirm_seconds)})")
            bp.confirm_seeds = 0
        elif bp.confirm_seeds < max(2, confirm_seeds):
            bp.dropped.append(f"confirm seeds {confirm_seeds} -> {bp.confirm_seeds}")
    if fixed + minimum > budget:
        raise BadInput(f"--budget {_minutes(budget)} is too small for this search: even "
                       f"{' + '.join(str(MIN_TRIALS.get(i, 2)) for i in range(len(stages)))} "
                       f"trials need about {_minutes(fixed + minimum)} here (raise --budget, "
                       "or lower the stages' epochs or subset)")
    room = budget - fixed - bp.confirm_seconds
    wanted = sum(s.seconds for s in stages)
    scale = min(MAX_SCALE, room / wanted) if wanted > 0 else 1.0
    for i, s in enumerate(stages):
        s.trials = max(MIN_TRIALS.get(i, 2), math.floor(s.requested * scale))
    while sum(s.seconds for s in stages) > room:  # rounding up to the minimums overshot
        big = max((s for i, s in enumerate(stages) if s.trials > MIN_TRIALS.get(i, 2)),
                  key=lambda s: s.seconds, default=None)
        if big is None:
            break
        big.trials -= 1
    cut = [f"{s.name} trials {s.requested} -> {s.trials}" for s in stages
           if s.trials < s.requested]
    bp.dropped += cut
    return bp


def apply(plan: Plan, bp: BudgetPlan) -> Plan:
    """The search plan with the budget's trial counts (promotion capped to fit)."""
    counts = {s.name: s.trials for s in bp.stages}
    plan.stages = [replace(s, trials=counts[s.name], promote=min(s.promote, counts[s.name]))
                   for s in plan.stages]
    return plan
