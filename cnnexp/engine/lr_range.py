"""Smith's learning-rate range test and the rules that turn its curve into a suggestion.

The sweep raises the LR exponentially from `start_lr` to `end_lr`, one optimiser step per
value, and tracks an exponentially smoothed loss (bias-corrected, as in Adam). It stops when
the smoothed loss exceeds `diverge` times its minimum or any loss is non-finite. Everything
the sweep touched (weights, buffers, optimiser state, RNG states) is restored afterwards, so a
later `fit` is unaffected.

Three rules read the smoothed curve up to its first valley (see docs/sanity.md):
  valley    the middle (log scale) of the longest stretch where the loss clearly descends
  steepest  where the loss falls fastest against log10(lr), before the minimum
  min/10    a tenth of the LR at the minimum loss
The recommendation is their median (log scale); they "agree" when all lie within a decade.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from cnnexp.engine.trainer import Trainer

RULES = ("valley", "steepest", "min/10")


@dataclass
class RangeResult:
    lrs: list[float]
    losses: list[float]  # raw per-step losses (may end with a non-finite one)
    smoothed: list[float]
    stop_reason: str
    suggestions: dict[str, float] = field(default_factory=dict)
    suggested_lr: float | None = None
    agree: bool = False
    spread_decades: float = math.nan
    descended: bool = False  # did any LR make the smoothed loss go clearly down?
    start_lr: float = 1e-7
    end_lr: float = 10.0

    @property
    def override(self) -> str | None:
        return f"opt.lr={self.suggested_lr:.2g}" if self.suggested_lr else None

    def at_edge(self) -> bool:
        """The recommendation sits in the outer 10% (log scale) of the sweep."""
        if not self.suggested_lr:
            return False
        lo, hi = math.log10(self.start_lr), math.log10(self.end_lr)
        pos = (math.log10(self.suggested_lr) - lo) / (hi - lo)
        return pos < 0.1 or pos > 0.9

    def as_dict(self) -> dict[str, Any]:
        return {"suggested_lr": self.suggested_lr, "suggestions": self.suggestions,
                "agree": self.agree, "spread_decades": self.spread_decades,
                "override": self.override, "descended": self.descended,
                "steps": len(self.lrs), "stop_reason": self.stop_reason,
                "start_lr": self.start_lr, "end_lr": self.end_lr}


def lr_schedule(start_lr: float, end_lr: float, num_steps: int) -> list[float]:
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / max(1, num_steps - 1)) for i in range(num_steps)]


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest run of True values (inclusive); (0, -1) when none."""
    best, run_start = (0, -1), None
    for i, flag in enumerate([*mask.tolist(), False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if i - 1 - run_start > best[1] - best[0]:
                best = (run_start, i - 1)
            run_start = None
    return best


def suggest(lrs: Sequence[float], smoothed: Sequence[float],
            valley_frac: float = 0.2) -> dict[str, float]:
    """The three rules applied to a finite smoothed curve; a rule that cannot apply is left out
    (e.g. when the minimum is among the first points). The valley is the longest stretch where
    the loss falls at least `valley_frac` times as fast as at its steepest: a flat, noisy
    plateau before the descent must not count as descending."""
    loss = np.asarray(smoothed, dtype=float)
    lr = np.asarray(lrs, dtype=float)
    i_min = int(np.argmin(loss))
    out: dict[str, float] = {}
    if i_min >= 2:
        slope = np.gradient(loss[: i_min + 1], np.log10(lr[: i_min + 1]))
        steepest = int(np.argmin(slope))
        if slope[steepest] < 0:
            s, e = _longest_run(slope <= valley_frac * slope[steepest])
            if e >= s:
                out["valley"] = float(math.sqrt(lr[s] * lr[e]))  # middle on the log scale
            out["steepest"] = float(lr[steepest])
    if len(loss):
        out["min/10"] = float(lr[i_min] / 10)
    return out


def recommend(suggestions: dict[str, float]) -> tuple[float | None, bool, float]:
    """(median LR in log space, all within a decade?, spread in decades)."""
    values = sorted(v for v in suggestions.values() if v > 0)
    if not values:
        return None, False, math.nan
    logs = [math.log10(v) for v in values]
    mid = len(logs) // 2
    median = logs[mid] if len(logs) % 2 else (logs[mid - 1] + logs[mid]) / 2
    spread = logs[-1] - logs[0]
    return 10**median, len(values) > 1 and spread <= 1.0, spread


@contextmanager
def preserved(model: nn.Module, optimizer: torch.optim.Optimizer,
              extra: Sequence[tuple[Callable[[], Any], Callable[[Any], None]]] = ()
              ) -> Iterator[None]:
    """Restore weights, buffers, optimiser state and RNG states on exit, whatever happens."""
    weights = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    saved_extra = [(get(), put) for get, put in extra]
    try:
        yield
    finally:
        model.load_state_dict(weights)
        optimizer.load_state_dict(opt_state)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if rng[3] is not None:
            torch.cuda.set_rng_state_all(rng[3])
        for state, put in saved_extra:
            put(state)


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer,
               step: Callable[[], torch.Tensor], *, start_lr: float = 1e-7,
               end_lr: float = 10.0, num_steps: int = 100, beta: float = 0.9,
               diverge: float = 4.0,
               extra_state: Sequence[tuple[Callable[[], Any], Callable[[Any], None]]] = (),
               on_step: Callable[[int, float], None] | None = None) -> RangeResult:
    """Run the sweep. `step()` does one training step (forward, backward, optimiser step) at
    the LR already set on the optimiser and returns the loss; `on_step(i, loss)` reports."""
    if not 0 < start_lr < end_lr:
        from cnnexp.errors import BadInput

        raise BadInput(f"LR range needs 0 < start < end (got {start_lr:g} -> {end_lr:g})")
    lrs, losses, smoothed = [], [], []
    avg, best, reason = 0.0, math.inf, f"reached end_lr={end_lr:g}"
    with preserved(model, optimizer, extra_state):
        model.train()
        for i, lr in enumerate(lr_schedule(start_lr, end_lr, num_steps)):
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = float(step().detach())
            lrs.append(lr)
            losses.append(loss)
            if on_step:
                on_step(i, loss)
            if not math.isfinite(loss):
                reason = f"non-finite loss at lr={lr:.3g}"
                break
            avg = beta * avg + (1 - beta) * loss
            smooth = avg / (1 - beta ** (i + 1))
            smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > diverge * best:
                reason = f"smoothed loss above {diverge:g}x its minimum at lr={lr:.3g}"
                break
    return analyse(lrs, losses, smoothed, reason, start_lr, end_lr)


def first_valley(smoothed: Sequence[float], give_back: float = 0.25) -> int:
    """How many points to read: up to where the curve first gives back `give_back` of the
    descent it has made so far. Past the first valley, at LRs where training is already
    unstable, a noisy curve can dip again (BatchNorm nets often do not diverge outright), and
    a rule that picked such a dip would recommend an unstable LR."""
    start, best = smoothed[0], smoothed[0]
    for i, value in enumerate(smoothed):
        best = min(best, value)
        # only once the descent is real (5%, as for `descended`): plateau noise is no valley
        if best < 0.95 * start and value > best + give_back * (start - best):
            return i
    return len(smoothed)


def analyse(lrs: list[float], losses: list[float], smoothed: list[float], reason: str,
            start_lr: float, end_lr: float) -> RangeResult:
    result = RangeResult(lrs, losses, smoothed, reason, start_lr=start_lr, end_lr=end_lr)
    if len(smoothed) >= 3:
        # "went down": the minimum is clearly (5%) below where the sweep started
        result.descended = min(smoothed) < 0.95 * smoothed[0]
    if result.descended:
        n = first_valley(smoothed)
        result.suggestions = suggest(lrs[:n], smoothed[:n])
        result.suggested_lr, result.agree, result.spread_decades = recommend(result.suggestions)
    return result


def lr_find(trainer: Trainer, **kwargs: Any) -> RangeResult:
    """The range test on a cnnexp Trainer: its batches, augmentation, loss (label smoothing,
    L1), optimiser (weight decay, momentum), gradient clipping and AMP settings."""
    batches = _forever(trainer)

    def step() -> torch.Tensor:
        return trainer.train_step(*next(batches))[0]

    gen, host = trainer.gen, trainer.aug.host_rng
    extra = [(gen.get_state, gen.set_state), (host.getstate, host.setstate),
             (trainer.schedule.state_dict, trainer.schedule.load_state_dict)]
    if trainer.scaler:
        extra.append((trainer.scaler.state_dict, trainer.scaler.load_state_dict))
    return range_test(trainer.model, trainer.optimizer, step, extra_state=extra, **kwargs)


def _forever(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:  # a fresh shuffled pass each time the last one ends
        yield from trainer.train_batches
