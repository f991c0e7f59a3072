"""One search trial: sample its parameters, train with `engine.fit`, report every epoch to
Optuna (so pruners can stop it), log it as a nested MLflow run, and tell Optuna how it ended."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from cnnexp import metrics
from cnnexp.diagnose.rules import diagnose_fit
from cnnexp.engine import Callback, FitState, fit
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan, StagePlan, trial_recipe
from cnnexp.search.narrow import Choice, Space, fmt
from cnnexp.search.signal import secondary
from cnnexp.search.storage import Stage, deferred_interrupts, heartbeat
from cnnexp.tracking import Kind, Recording, Run, tracked
from cnnexp.tracking import tags as T

if TYPE_CHECKING:
    from cnnexp.data import DataBundle
    from cnnexp.schema import Recipe

SHORT = {"weight_decay": "wd", "dropout": "drop", "label_smoothing": "ls", "momentum": "mom",
         "batch_size": "bs", "translate": "shift", "warmup_epochs": "warmup"}


def trial_name(stage: str, number: int, params: dict[str, Any]) -> str:
    """`coarse-07 lr=3.2e-3 wd=1e-4`: readable in the MLflow run list."""
    parts = [f"{SHORT.get(p.rpartition('.')[2], p.rpartition('.')[2])}={fmt(v)}"
             for p, v in params.items()]
    return " ".join([f"{stage}-{number:02d}", *parts])


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Parameter names are the recipe paths (`opt.lr`), so Optuna's CLI and dashboard show them."""
    out: dict[str, Any] = {}
    for path, p in space.items():
        if isinstance(p, Choice):
            out[path] = trial.suggest_categorical(path, list(p.choices))
        elif p.integer:
            out[path] = trial.suggest_int(path, int(p.low), int(p.high), log=p.log)
        else:
            out[path] = trial.suggest_float(path, p.low, p.high, log=p.log)
    return out


def make_sampler(stage: StagePlan, number: int) -> optuna.samplers.BaseSampler:
    """A sampler for one trial. `random` and `tpe` are seeded per trial number, so a trial's
    parameters do not depend on which worker ran it (TPE reads every finished trial from the
    storage; its random number generator is all it keeps). One seed per worker would repeat
    the same draw in every trial, since the sampler is made afresh for each: TPE's ten random
    start-up trials were one configuration ten times. `qmc` shares one scrambled sequence
    across workers (its position comes from the study)."""
    if stage.sampler == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True,
                                          seed=stage.seed % 2**32,
                                          warn_independent_sampling=False)
    seed = (stage.seed * 1_000_003 + number) % 2**32
    if stage.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(stage: StagePlan) -> optuna.pruners.BasePruner:
    if stage.pruner == "median":
        # judge only against a few finished trials, and only in the second half of a run:
        # early epochs of a high-lr (or warming-up) trial look worse than they end
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, stage.trials // 2)),
                                           n_warmup_steps=max(1, stage.epochs // 2))
    if stage.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=stage.epochs)
    return optuna.pruners.NopPruner()


class Reporter(Callback):
    """Each epoch's metric to Optuna; raises TrialPruned out of `fit` when the pruner says so.
    Never after the last epoch: a trial that has trained every epoch has nothing left to save,
    and its value is a full-budget result (Optuna's Hyperband pruner would otherwise prune a
    trial at its top rung, after all the compute was spent, and its value would be lost)."""

    def __init__(self, trial: optuna.Trial, metric: str, epochs: int | None = None) -> None:
        self.trial, self.metric, self.epochs = trial, metric, epochs

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric, math.nan)
        if not math.isfinite(value):
            return  # a diverged epoch: the engine stops and the trial is recorded as such
        epoch = int(metrics["epoch"])
        self.trial.report(value, epoch)
        if self.epochs is not None and epoch >= self.epochs:
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


def objective_epoch(history: list[dict[str, float]], metric: str, direction: str,
                    summary: str) -> dict[str, float] | None:
    """The epoch whose metric is the trial's value: the best one (summary: best, ties to the
    better secondary metric) or the last one (summary: last); None if no epoch has it."""
    epochs = [h for h in history if math.isfinite(h.get(metric, math.nan))]
    if not epochs:
        return None
    if summary == "last":
        return epochs[-1]
    second = secondary(metric)
    sign = 1 if direction == "maximize" else -1
    sign2 = 1 if metrics.higher_is_better(second) else -1
    return max(epochs, key=lambda h: (sign * h[metric], sign2 * h.get(second, math.nan)
                                      if math.isfinite(h.get(second, math.nan)) else -math.inf))


def objective(history: list[dict[str, float]], metric: str, direction: str,
              summary: str) -> float | None:
    """The trial's value: its best epoch (summary: best) or its last one (summary: last)."""
    epoch = objective_epoch(history, metric, direction, summary)
    return epoch[metric] if epoch is not None else None


@dataclass
class TrialContext:
    """What a worker gives each trial."""

    plan: Plan
    stage: StagePlan
    store: Stage
    space: Space
    stage_run: Run | None
    device: Any
    data: Any  # Callable[[Recipe], DataBundle]
    worker: int = 0
    callbacks: Sequence[Callback] = field(default_factory=tuple)


def run_trial(ctx: TrialContext, trial_id: int) -> str:
    """Run one claimed trial to its end; returns its state (complete/pruned/failed). Ctrl-C
    marks it failed, re-queues it with the same parameters, and propagates."""
    study, storage = ctx.store.study, ctx.store.storage
    frozen = storage.get_trial(trial_id)
    number = frozen.number
    study.sampler = make_sampler(ctx.stage, number)
    study.pruner = make_pruner(ctx.stage)
    # Trial(study, id) is what study.ask() builds after popping a WAITING trial; building it
    # here lets a worker take exactly one ticket, never a fresh (uncounted) trial.
    trial = optuna.trial.Trial(study, trial_id)
    params = suggest(trial, ctx.space)
    name = trial_name(ctx.stage.name, number, params)
    source = frozen.user_attrs.get(A.PROMOTED_FROM)
    if source is not None and ctx.plan.previous(ctx.stage.name) is not None:
        # a promoted configuration: say which trial of the cheaper stage it re-trains
        prev = ctx.plan.previous(ctx.stage.name)
        name = name.replace(" ", f" (={prev.name}-{int(source):02d}) ", 1) if " " in name \
            else f"{name} (={prev.name}-{int(source):02d})"
    recipe = trial_recipe(ctx.plan, params, ctx.stage.epochs, ctx.stage.subset, one_view=True)
    tags = {T.STAGE: ctx.stage.name, T.TRIAL: number, T.STUDY: study.study_name}
    retry = frozen.system_attrs.get("failed_trial")
    if retry is not None:
        tags[T.RETRY_OF] = retry
    start = time.perf_counter()
    trial.set_user_attr(A.NAME, name)
    with heartbeat(storage, trial_id), tracked(
            Kind.TRIAL, name, enabled=ctx.stage_run is not None, parent=ctx.stage_run,
            recipe=recipe, device=ctx.device, tags=tags) as rec:
        if rec.active:
            trial.set_user_attr(A.RUN_ID, rec.run_id)
        rec.log_params({"search.stage": ctx.stage.name, "search.trial": number})
        try:
            state, value, reason = _train(ctx, trial, recipe, rec)
        except KeyboardInterrupt:
            with deferred_interrupts():  # a second Ctrl-C must not cut the bookkeeping short
                ctx.store.fail(storage.get_trial(trial_id), "interrupted", retry=True)
                rec.set_tags({T.STATE: "interrupted", T.REASON: "interrupted"})
            raise
        seconds = time.perf_counter() - start
        trial.set_user_attr(A.REASON, reason)
        trial.set_user_attr(A.SECONDS, round(seconds, 3))
        rec.set_tags({T.STATE: state.name.lower(), T.REASON: reason})
        if value is not None:
            rec.log_metrics({"objective": value, "trial_seconds": seconds})
        if state == TrialState.FAIL or reason.startswith("diverged"):
            rec.fail()
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    return state.name.lower()


def _train(ctx: TrialContext, trial: optuna.Trial, recipe: Recipe,
           rec: Recording) -> tuple[TrialState, float | None, str]:
    plan = ctx.plan
    callbacks = [*rec.callbacks(diagnose_fit), Reporter(trial, plan.metric, recipe.train.epochs),
                 *ctx.callbacks]
    try:
        data: DataBundle = ctx.data(recipe)
        result = fit(recipe, data=data, device=ctx.device, callbacks=callbacks)
    except optuna.TrialPruned as exc:
        return TrialState.PRUNED, None, str(exc) or "pruned"
    except Exception as exc:  # one broken trial (e.g. out of memory) must not end the search
        from cnnexp.errors import environment_failure

        if environment_failure(exc) is not None:
            raise  # the machine's fault (disk full): the worker re-queues it and stops
        rec.log_text(traceback.format_exc(), "traceback.txt")
        return TrialState.FAIL, None, f"{type(exc).__name__}: {exc}"[:500]
    # the learning-curve verdict for the trial tables (the MLflow tag is the outcome logger's)
    trial.set_user_attr(A.DIAGNOSIS, rec.judged(result, diagnose_fit).diagnosis)
    # what the stage analysis needs: the evaluation set's size (noise) and the chance level
    trial.set_user_attr(A.EVAL_SIZE, data.n_val)
    trial.set_user_attr(A.CLASSES, data.num_classes)
    last = result.final
    trial.set_user_attr(A.LAST_LOSS, last.get("train_loss", math.nan))
    if result.status == "diverged":
        return TrialState.PRUNED, None, f"diverged ({result.reason})"
    epoch = objective_epoch(result.history, plan.metric, plan.direction, plan.summary)
    if epoch is None:
        return TrialState.FAIL, None, f"no finite {plan.metric}"
    trial.set_user_attr(A.SECOND, epoch.get(secondary(plan.metric), math.nan))
    return TrialState.COMPLETE, epoch[plan.metric], result.reason or result.status
