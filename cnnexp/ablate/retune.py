"""--retune-lr: a small per-arm learning-rate search, so each arm is compared at its own best
LR rather than the baseline's (the tuning playbook's advice). Deliberately tiny and
self-contained: an in-memory Optuna study, random sampling log-uniform in
[lr / factor, lr * factor], a few short trials; the baseline LR is always tried first."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cnnexp.ablate.spec import RetuneCfg
from cnnexp.engine import Callback, FitResult, fit
from cnnexp.metrics import higher_is_better
from cnnexp.schema import Recipe


@dataclass
class RetuneResult:
    lr: float
    low: float
    high: float
    epochs: int
    trials: list[tuple[float, float]]  # (lr, metric) per trial, in the order run

    def csv(self) -> str:
        return "lr,value\n" + "".join(f"{lr:.6g},{v:.6g}\n" for lr, v in self.trials)


def metric_value(result: FitResult, metric: str) -> float:
    """The ablation metric of a finished fit (NaN when it diverged)."""
    if result.status == "diverged":
        return math.nan
    if metric == "best_val_acc":
        return result.best_val_acc
    return float(result.final.get(metric, math.nan))


def retune_epochs(recipe: Recipe, cfg: RetuneCfg) -> int:
    return min(cfg.epochs or max(1, recipe.train.epochs // 3), recipe.train.epochs)


def retune_lr(recipe: Recipe, cfg: RetuneCfg, metric: str, *, data: object, device: object,
              callbacks: Sequence[Callback] = (), seed: int = 0) -> RetuneResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    higher = higher_is_better(metric)
    lr0 = recipe.opt.lr
    low, high = lr0 / cfg.factor, lr0 * cfg.factor
    epochs = retune_epochs(recipe, cfg)
    short = recipe.model_copy(update={"train": recipe.train.model_copy(update={"epochs": epochs})})
    worst = -math.inf if higher else math.inf
    trials: list[tuple[float, float]] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", low, high, log=True)
        r = short.model_copy(update={"opt": short.opt.model_copy(update={"lr": lr})})
        value = metric_value(fit(r, data=data, device=device, callbacks=callbacks), metric)
        trials.append((lr, value))
        return value if math.isfinite(value) else worst  # diverged: ranks last

    study = optuna.create_study(direction="maximize" if higher else "minimize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial({"lr": lr0})
    study.optimize(objective, n_trials=cfg.trials)
    best = float(study.best_params["lr"]) if math.isfinite(study.best_value) else lr0
    return RetuneResult(best, low, high, epochs, trials)
