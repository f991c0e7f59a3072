"""What a finished search reports: per-stage counts and best trials, edge warnings, the CSV of
all trials, the best recipe as YAML, tables for the terminal and markdown for MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from cnnexp.files import replaced
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan, StagePlan, trial_recipe
from cnnexp.search.fidelity import Fidelity, Pair, check
from cnnexp.search.narrow import Space, edge_warnings, fmt
from cnnexp.search.signal import Signal, is_accuracy, top_gap_text
from cnnexp.search.stages import (
    point,
    ranked,
    stage_signal,
    stage_space,
    stage_study,
    stands_out_in,
)
from cnnexp.search.storage import counts, state_word, superseded

if TYPE_CHECKING:
    from cnnexp.schema import Recipe
    from cnnexp.search.final_budget import FinalPlan


@dataclass
class StageResult:
    plan: StagePlan
    study: optuna.Study
    trials: list[FrozenTrial]  # counted trials (a re-queued failure appears once, as its retry)
    space: Space
    metric: str
    direction: str
    edge: float
    bounds: dict[str, Any] = field(default_factory=dict)
    previous: StageResult | None = None  # the stage it was narrowed (and promoted) from

    @cached_property
    def fidelity(self) -> Fidelity | None:
        """How well the previous stage's ranking carried to this stage, from the
        configurations this stage re-trained (None for a stage that re-trained none)."""
        prev = self.previous
        promoted = [t for t in self.trials if A.PROMOTED_FROM in t.user_attrs
                    and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if prev is None or not promoted:
            return None
        cheap = {t.number: t.value for t in prev.trials if t.state == TrialState.COMPLETE}
        pairs = []
        for t in promoted:
            source = int(t.user_attrs[A.PROMOTED_FROM])
            if cheap.get(source) is not None:
                dear = t.value if t.state == TrialState.COMPLETE else None
                pairs.append(Pair(source, t.number, float(cheap[source]),
                                  float(dear) if dear is not None else None))
        return check(pairs, cheap_stage=prev.plan.name, stage=self.plan.name,
                     maximize=self.direction == "maximize", eval_size=self.signal.eval_size,
                     accuracy=is_accuracy(self.metric))

    @cached_property
    def top(self) -> list[FrozenTrial]:
        """Completed trials, best first (exact ties: the better loss, then trial order)."""
        return ranked(self.trials, self.metric, self.direction)

    @property
    def best(self) -> FrozenTrial | None:
        top = self.top
        return top[0] if top else None

    @cached_property
    def signal(self) -> Signal:
        return stage_signal(self.trials, self.metric, self.direction)

    @cached_property
    def edge_warnings(self) -> list[str]:
        """Edge warnings about this stage's own best, only where the edge value stands out
        from the rest of the range (and the stage has signal at all)."""
        best = self.best
        if best is None or not self.signal.signal:
            return []
        return edge_warnings(self.space, best.params, edge=self.edge, bounds=self.bounds,
                             stands_out=stands_out_in(self.trials, self.space, self.metric,
                                                      self.direction, self.edge,
                                                      self.signal.eval_size))

    def summary(self) -> dict[str, Any]:
        c = counts(self.study.get_trials(deepcopy=False))
        best = self.best
        return {"name": self.plan.name, "trials": c.finished, "complete": c.complete,
                "pruned": c.pruned, "failed": c.failed, "skipped": c.skipped,
                "best_value": best.value if best else None,
                "best_params": dict(best.params) if best else {},
                "best_trial": best.number if best else None,
                "noise": self.signal.to_dict(), "signal": self.signal.signal,
                "noise_line": self.signal.noise_text(),
                "top_gap": top_gap_text([point(t) for t in self.top], self.signal.eval_size),
                "ranges": {p: v.to_dict() for p, v in self.space.items()},
                "narrowing": {p: {"from": c[0], "to": c[1], "how": c[2] if len(c) > 2 else ""}
                              for p, c in self.study.user_attrs.get(A.NARROWING, {}).items()},
                "edge_warnings": self.edge_warnings, "epochs": self.plan.epochs,
                "subset": self.plan.subset, "requested": c.requested, "retried": c.retried,
                "fidelity": self.fidelity.to_dict() if self.fidelity else None}


def collect(storage: BaseStorage, plan: Plan) -> list[StageResult]:
    out: list[StageResult] = []
    for sp in plan.stages:
        try:
            study = optuna.load_study(study_name=stage_study(plan, sp.name), storage=storage)
        except KeyError:  # never started: the --budget deadline came first
            continue
        trials = study.get_trials(deepcopy=False)
        gone = superseded(trials)
        counted = [t for t in trials if t.number not in gone]
        out.append(StageResult(sp, study, counted, stage_space(study), plan.metric,
                               plan.direction, plan.edge, plan.bounds,
                               out[-1] if out else None))
    return out


def best_of(results: list[StageResult]) -> tuple[StageResult, FrozenTrial] | None:
    """The best trial of the last stage that completed one: stages run at different budgets
    (epochs, subsets), so values are compared only within a stage, and the last stage ran
    closest to the final budget."""
    for r in reversed(results):
        if r.best is not None:
            return r, r.best
    return None


def rows(results: list[StageResult]) -> list[dict[str, Any]]:
    """One row per trial (re-queued failures included, marked), for the CSV."""
    out = []
    for r in results:
        all_trials = r.study.get_trials(deepcopy=False)
        gone = superseded(all_trials)
        # a trial failed by Optuna's heartbeat check carries no reason of its own (a finished
        # trial cannot be annotated); its retry says why it was re-queued
        why = {t.system_attrs["retry_history"][-1]: t.user_attrs.get(A.RETRY_REASON, "")
               for t in all_trials if t.system_attrs.get("retry_history")}
        for t in all_trials:
            out.append({"stage": r.plan.name, "trial": t.number,
                        "name": t.user_attrs.get(A.NAME, ""),
                        "state": state_word(t), "value": t.value,
                        "counted": t.number not in gone, "epochs": r.plan.epochs,
                        "subset": r.plan.subset,
                        **{f"params.{p}": t.params.get(p) for p in r.space},
                        "reason": t.user_attrs.get(A.REASON) or why.get(t.number, ""),
                        "diagnosis": t.user_attrs.get(A.DIAGNOSIS, ""),
                        "seconds": t.user_attrs.get(A.SECONDS),
                        "retry_of": t.system_attrs.get("failed_trial"),
                        "mlflow_run_id": t.user_attrs.get(A.RUN_ID, "")})
    return out


def best_recipe(plan: Plan, params: dict[str, Any]) -> Recipe:
    """The recipe with the best trial's parameters at the recipe's own training budget (its
    train.epochs, all the training data): what a final run trains."""
    return trial_recipe(plan, params, base_epochs(plan))


def base_epochs(plan: Plan) -> int:
    from cnnexp.recipe import load_recipe

    return load_recipe(plan.ref, plan.overrides).train.epochs


def write_best_recipe(plan: Plan, stage: StageResult, trial: FrozenTrial, path: Path,
                      final: FinalPlan | None = None) -> Path:
    """best.yaml: the best trial's configuration at the recipe's own train.epochs, or at the
    epochs that fit the final budget (`final`)."""
    from cnnexp.recipe import to_yaml

    recipe = best_recipe(plan, dict(trial.params))
    budget = f"{stage.plan.epochs} epochs" + (f" on {stage.plan.subset} images"
                                              if stage.plan.subset else "")
    if final is not None:
        recipe.train.epochs = final.epochs
        trains = (f"trains for {final.epochs} epochs, as many as fit the final budget of "
                  f"{final.budget / 60:.1f} min on the machine that searched "
                  f"({final.epoch_seconds:.0f} s per epoch)")
    else:
        trains = f"trains for {recipe.train.epochs} epochs, the recipe's own budget"
    recipe.description = (f"Best trial of search {plan.study}: {stage.plan.name}-{trial.number:02d}"
                          f" ({plan.metric}={trial.value:.4f} after {budget}); {trains}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as tmp:
        tmp.write_text(to_yaml(recipe), encoding="utf-8")
    return path


def top_markdown(r: StageResult, metric: str, k: int = 10) -> str:
    params = list(r.space)
    head = f"| trial | {metric} | ± noise | " + " | ".join(params) + " | diagnosis |"
    lines = [head, "|" + "---|" * (len(params) + 4)]
    within = set(r.signal.within)
    for t in r.top[:k]:
        tie = " (within noise of the best)" if t.number in within and t is not r.best else ""
        lines.append(f"| {r.plan.name}-{t.number:02d} | {t.value:.4f}{tie} | "
                     f"{noise_of(t.value, r.signal)} | " +
                     " | ".join(fmt(t.params.get(p, "")) for p in params) +
                     f" | {t.user_attrs.get(A.DIAGNOSIS, '-')} |")
    return "\n".join(lines)


def noise_of(value: float, signal: Signal) -> str:
    """`±0.0028` (binomial SE on the validation set), or `-` when it cannot be estimated."""
    import math

    from cnnexp.noise import binomial_se

    if not signal.eval_size or not is_accuracy(signal.metric):
        return "-"
    se = binomial_se(value, signal.eval_size)
    return f"±{se:.4f}" if math.isfinite(se) else "-"


def stage_markdown(r: StageResult, metric: str, narrowing: str) -> str:
    s = r.summary()
    out = [narrowing, "",
           f"{s['trials']} trials: {s['complete']} complete, {s['pruned']} pruned, "
           f"{s['failed']} failed. {'**No signal:** ' + r.signal.reading if not r.signal.signal else s['noise_line']}",
           *(["", s["top_gap"]] if s["top_gap"] else []),
           *(["", f"Fidelity: {r.fidelity.text}"] if r.fidelity else []),
           "", top_markdown(r, metric)]
    out += ["", *(f"**Warning:** {w}" for w in s["edge_warnings"])]
    if r.fidelity and r.fidelity.warning:
        out += [f"**Warning:** {r.fidelity.warning}"]
    return "\n".join(out).rstrip()


def parent_markdown(plan: Plan, results: list[StageResult], best: tuple | None,
                    seconds: float) -> str:
    lines = [f"**Search {plan.study}** on recipe `{plan.recipe_name}`, {plan.metric} "
             f"({plan.direction}), {seconds:.0f} s.", "",
             "| stage | trials | complete | pruned | failed | best | epochs | finding |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r.summary()
        best_v = f"{s['best_value']:.4f}" if s["best_value"] is not None else "-"
        # each stage's finding on the study's own page, not only three levels down
        finding = ("signal: " + s["noise_line"] if r.signal.signal else
                   "no signal: " + r.signal.reading).replace("|", "\\|")
        lines.append(f"| {s['name']} | {s['trials']} | {s['complete']} | {s['pruned']} | "
                     f"{s['failed']} | {best_v} | {s['epochs']} | {finding} |")
    if best:
        r, t = best
        lines += ["", f"Best: **{r.plan.name}-{t.number:02d}** {plan.metric}={t.value:.4f} " +
                  " ".join(f"`{p}={fmt(v)}`" for p, v in t.params.items())]
    carried = [f"- {r.fidelity.text}" for r in results if r.fidelity]
    if carried:
        lines += ["", "**Fidelity** (does the cheaper stage's ranking carry?):", *carried]
    warns = [f"- {r.plan.name}: {w}" for r in results for w in r.edge_warnings]
    if warns:
        lines += ["", "**Edge warnings** (the best value sits at the edge of its range):", *warns]
    return "\n".join(lines)
