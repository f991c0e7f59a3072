"""The confirming stage: does the search's best configuration beat the recipe as written?

A search picks its best trial from one seed per configuration, on the same validation set it
then reports — an optimistic figure. So after the last stage both the best configuration and
the recipe are retrained over several seeds at the final budget (the recipe's own
train.epochs on all the training data, unless `search.confirm.epochs` says otherwise), and
compared with Welch's t-test: "best beats the recipe by +X pp (p = …)" or "within noise: the
recipe is as good". With `--test`, the winner's seeds are then evaluated once on the held-out
test split (the recipe wins ties: it is the simpler choice)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnexp.data import DataBundle, build_data
from cnnexp.engine import Callback, FitResult, fit
from cnnexp.metrics import higher_is_better
from cnnexp.noise import mean_std, verdict, welch_p
from cnnexp.schema import Recipe
from cnnexp.search.config import Plan, trial_recipe
from cnnexp.search.trial import objective
from cnnexp.tracking import Kind, Run, tracked
from cnnexp.tracking import tags as T

BEST, RECIPE = "best", "recipe"


@dataclass
class Arm:
    label: str
    recipe: Recipe
    values: list[float] = field(default_factory=list)  # the metric per seed (NaN: diverged)
    run_ids: list[str] = field(default_factory=list)
    results: list[FitResult] = field(default_factory=list, repr=False)

    @property
    def finished(self) -> list[float]:
        return [v for v in self.values if math.isfinite(v)]

    def stats(self) -> dict[str, Any]:
        mean, std = mean_std(self.finished)
        return {"mean": mean, "std": std, "values": self.values, "run_ids": self.run_ids,
                "diverged": len(self.values) - len(self.finished)}


def _pp(x: float, metric: str) -> str:
    """Accuracy differences in percentage points, losses as they are."""
    if not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.2f} pp" if metric.endswith("_acc") else f"{x:+.4f}"


def _level(mean: float, std: float, metric: str) -> str:
    if not math.isfinite(mean):
        return "n/a"
    spread = f" ± {std * 100:.2f}" if math.isfinite(std) else ""
    return f"{mean * 100:.2f}{spread} %" if metric.endswith("_acc") else \
        f"{mean:.4f}" + (f" ± {std:.4f}" if math.isfinite(std) else "")


def headline(metric: str, best: Arm, recipe: Arm, delta: float, p: float, call: str,
             seeds: int) -> str:
    """The one line a reviewer reads first."""
    sb, sr = best.stats(), recipe.stats()
    levels = (f"{_level(sb['mean'], sb['std'], metric)} vs "
              f"{_level(sr['mean'], sr['std'], metric)} over {seeds} seed(s)")
    p_text = f"p = {p:.2g}" if math.isfinite(p) else "no test"
    if call == "diverged":
        return f"a confirming run diverged: best {levels} — look at the failed runs"
    if call == "helps":
        return f"best beats the recipe by {_pp(delta, metric)} ({p_text}; {levels})"
    if call == "hurts":
        return (f"the recipe beats the best trial by {_pp(-delta, metric)} ({p_text}; "
                f"{levels}): keep the recipe")
    if call == "n/a":
        return (f"one seed each: Δ {_pp(delta, metric)} ({levels}); no test — confirm with "
                "--confirm-seeds 2 or more")
    return f"within noise: the recipe is as good (Δ {_pp(delta, metric)}, {p_text}; {levels})"


def run_confirm(plan: Plan, best_params: dict[str, Any], *, device: torch.device,
                seeds: int, parent: Run | None, test: bool = False,
                callbacks: Callable[[str], Sequence[Callback]] = lambda label: (),
                say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Retrain both arms over `seeds` seeds, compare, and (with `test`) evaluate the winner on
    the test split. Returns the JSON `confirm` object."""
    epochs = plan.confirm.epochs or _recipe_epochs(plan)
    arms = [Arm(BEST, trial_recipe(plan, best_params, epochs)),
            Arm(RECIPE, trial_recipe(plan, {}, epochs))]
    cache: dict[str, DataBundle] = {}
    for arm in arms:
        for i in range(seeds):
            _train(plan, arm, i, device, parent, cache, callbacks, say)
    best, recipe = arms
    sign = 1.0 if higher_is_better(plan.metric) else -1.0
    (mb, _), (mr, _) = mean_std(best.finished), mean_std(recipe.finished)
    delta = mb - mr
    p = welch_p(best.finished, recipe.finished)
    call = verdict(sign * delta, p, True, plan.confirm.alpha)
    if best.finished != best.values or recipe.finished != recipe.values:
        call = "diverged"
    out: dict[str, Any] = {
        "metric": plan.metric, "seeds": seeds, "epochs": epochs, "alpha": plan.confirm.alpha,
        "best_params": best_params, "best": best.stats(), "recipe": recipe.stats(),
        "delta": delta, "p_value": p, "verdict": call,
        "winner": BEST if call == "helps" else RECIPE,
        "headline": headline(plan.metric, best, recipe, delta, p, call, seeds)}
    if test:
        out["test"] = _test_winner(best if call == "helps" else recipe, cache)
    return out


def _recipe_epochs(plan: Plan) -> int:
    from cnnexp.recipe import load_recipe

    return load_recipe(plan.ref, plan.overrides).train.epochs


def _train(plan: Plan, arm: Arm, i: int, device: torch.device, parent: Run | None,
           cache: dict[str, DataBundle], callbacks: Callable[[str], Sequence[Callback]],
           say: Callable[[str], None]) -> None:
    recipe = arm.recipe.model_copy(deep=True)
    recipe.train.seed = arm.recipe.train.seed + i
    key = recipe.data.model_dump_json()
    if key not in cache:
        cache[key] = build_data(recipe).to(device)
    label = f"confirm {arm.label} seed={recipe.train.seed}"
    with tracked(Kind.CONFIRM, label, enabled=parent is not None, parent=parent, recipe=recipe,
                 device=device, tags={T.ARM: arm.label, T.SEED: recipe.train.seed}) as rec:
        result = fit(recipe, data=cache[key], device=device,
                     callbacks=[*rec.callbacks(), *callbacks(label)])
        value = objective(result.history, plan.metric, plan.direction, plan.summary)
        value = math.nan if value is None or result.status == "diverged" else value
        rec.log_metrics({"confirm_value": value} if math.isfinite(value) else {})
    arm.values.append(value)
    arm.run_ids.append(rec.run_id or "")
    arm.results.append(result)
    shown = f"{plan.metric}={value:.4f}" if math.isfinite(value) else "diverged"
    say(f"{label}: {shown} ({result.seconds:.0f} s)")


def _test_winner(arm: Arm, cache: dict[str, DataBundle]) -> dict[str, Any]:
    """The winner's seeds on the held-out test split: the final figure, read once."""
    from cnnexp.final import evaluate_test

    data = cache[arm.recipe.data.model_dump_json()]
    tested = [evaluate_test(r, data) for r in arm.results if r.status != "diverged"]
    accs = [t.acc for t in tested]
    mean, std = mean_std(accs)
    return {"arm": arm.label, "test_acc_mean": mean, "test_acc_std": std, "test_acc": accs,
            "test_images": tested[0].n if tested else 0,
            "test_split": tested[0].origin if tested else "",
            "test_acc_se": tested[0].se if len(tested) == 1 else math.nan,
            "weights": "each seed's best epoch by validation accuracy"}
