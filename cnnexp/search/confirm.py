"""The confirming stage: does the search's best configuration beat the recipe as written?

A search picks its best trial from one seed per configuration, on the same validation set it
then reports — an optimistic figure. So after the last stage both the best configuration and
the recipe are retrained over several seeds at the final budget (the recipe's own
train.epochs on all the training data, unless `search.confirm.epochs` says otherwise), and
compared seed by seed (both arms train on the same seeds, so a paired t-test removes what a
seed moves in both): "best beats the recipe by +X pp (paired p = …)", "not shown: the best
trial leads by +X pp, within noise" or "within noise: no difference shown", with the smallest
difference the comparison could have detected at the observed noise beside it. `seeds: auto` adds a seed to both arms at a time until the verdict is
decided (p < alpha), more seeds could not plausibly decide it, `max_seeds` is reached, or (with
a budget) one more pair would end past it.
With `--test`, the winner's seeds are then evaluated once on the held-out test split (the
recipe wins ties: it is the simpler choice)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnexp.data import DataBundle, build_data
from cnnexp.diagnose.rules import diagnose_fit
from cnnexp.engine import Callback, FitResult, fit
from cnnexp.metrics import higher_is_better
from cnnexp.noise import detectable, mean_std, paired_p, verdict
from cnnexp.schema import Recipe
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan, trial_recipe
from cnnexp.search.final_budget import epoch_seconds_of
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
        # what one epoch of this arm costs on all the data (the final budget's measure)
        per_epoch = epoch_seconds_of([(r.seconds, len(r.history)) for r in self.results
                                      if r.status != "diverged"])
        return {"mean": mean, "std": std, "values": self.values, "run_ids": self.run_ids,
                "diverged": len(self.values) - len(self.finished),
                "epoch_seconds": round(per_epoch, 2) if per_epoch else None}


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
             seeds: int, mde: float = math.nan, auto: bool = True) -> str:
    """The one line a reviewer reads first."""
    sb, sr = best.stats(), recipe.stats()
    levels = (f"{_level(sb['mean'], sb['std'], metric)} vs "
              f"{_level(sr['mean'], sr['std'], metric)} over {seeds} paired seed(s)")
    p_text = f"paired p = {p:.2g}" if math.isfinite(p) else "no test"
    could = f"; could detect >= {_pp(mde, metric).lstrip('+')}" if math.isfinite(mde) else ""
    if call == "diverged":
        return f"a confirming run diverged: best {levels} — look at the failed runs"
    if call == "helps":
        return f"best beats the recipe by {_pp(delta, metric)} ({p_text}; {levels})"
    if call == "hurts":
        return (f"the recipe beats the best trial by {_pp(-delta, metric)} ({p_text}; "
                f"{levels}): keep the recipe")
    if call == "n/a":
        return (f"one seed each: Δ {_pp(delta, metric)} ({levels}); no test — confirm with "
                "--confirm-seeds 2 or more (or auto)")
    # "within noise" is absence of evidence, not evidence of no difference: a lead the test
    # was too weak to confirm is named as such, with how to settle it.
    lead = delta if higher_is_better(metric) else -delta
    if math.isfinite(lead) and lead > 0:
        return (f"not shown: the best trial leads by {_pp(delta, metric)}, within noise "
                f"({p_text}{could}; {levels}); the recipe stays — more seeds "
                f"({'search.confirm.max_seeds' if auto else '--confirm-seeds auto'}) could "
                "settle it")
    return (f"within noise: no difference shown (Δ {_pp(delta, metric)}, {p_text}{could}; "
            f"{levels}); the recipe stays, the simpler choice")


AUTO_START = 2  # `seeds: auto` starts with two seeds per arm: the fewest a test needs


def stop_reason(best: Sequence[float], recipe: Sequence[float], alpha: float,
                cap: int) -> str | None:
    """Why an automatic confirming stage stops after these paired values, or None to add a
    seed: `decided` (p < alpha), `cap` (max_seeds reached), or `futile` (even at the cap the
    difference seen would be under half of what the test could detect at this spread)."""
    n = len(best)
    if n >= 2 and paired_p(best, recipe) < alpha:
        return "decided"
    if n >= cap:
        return "cap"
    if n >= 3:  # a spread from two differences is too rough to give up on
        diffs = [a - b for a, b in zip(best, recipe, strict=True)]
        mean, std = mean_std(diffs)
        from scipy import stats

        reach = (stats.t.ppf(1 - alpha / 2, cap - 1) + stats.t.ppf(0.8, cap - 1)) * std \
            / math.sqrt(cap)
        if abs(mean) < reach / 2:
            return "futile"
    return None


def another_pair_fits(deadline: float | None, pair_seconds: float, now: float) -> bool:
    """With a budget, auto adds a seed only if one more pair ends before the deadline, at what
    the last pair took: the seeds planned were priced on the recipe, and a tuned configuration
    (a wider network, a smaller batch) may train at half its speed."""
    return deadline is None or now + pair_seconds <= deadline


def run_confirm(plan: Plan, best_params: dict[str, Any], *, device: torch.device,
                seeds: int | str, parent: Run | None, test: bool = False,
                callbacks: Callable[[str], Sequence[Callback]] = lambda label: (),
                say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Retrain both arms on the same seeds (`auto`: until decided, see stop_reason), compare
    them pair by pair, and (with `test`) evaluate the winner on the test split. Returns the
    JSON `confirm` object."""
    epochs = plan.confirm.epochs or _recipe_epochs(plan)
    arms = [Arm(BEST, trial_recipe(plan, best_params, epochs)),
            Arm(RECIPE, trial_recipe(plan, {}, epochs))]
    best, recipe = arms
    auto = seeds == "auto"
    cap = plan.confirm.max_seeds if auto else int(seeds)
    cache: dict[str, DataBundle] = {}
    stopped = None
    i = 0
    deadline = (plan.deadline or {}).get("deadline")
    while i < (AUTO_START if auto else cap) or (auto and stopped is None):
        began = time.time()
        for arm in arms:
            _train(plan, arm, i, device, parent, cache, callbacks, say)
        i += 1
        if auto and i >= AUTO_START:
            pairs = _pairs(best, recipe)
            stopped = stop_reason(*pairs, plan.confirm.alpha, cap) if pairs[0] else "cap"
            pair = time.time() - began
            if stopped is None and not another_pair_fits(deadline, pair, time.time()):
                stopped = "budget"
                say(f"confirm: not decided after {i} seed(s); one more pair (~{pair / 60:.1f} "
                    "min, as the last took) would end past the budget")
            elif stopped is None:
                say(f"confirm: not decided after {i} seed(s); adding one")
    sign = 1.0 if higher_is_better(plan.metric) else -1.0
    a, b = _pairs(best, recipe)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    delta = mean_std(diffs)[0] if diffs else math.nan
    p = paired_p(a, b)
    mde = detectable(diffs, plan.confirm.alpha)
    call = verdict(sign * delta, p, True, plan.confirm.alpha)
    if best.finished != best.values or recipe.finished != recipe.values:
        call = "diverged"
    out: dict[str, Any] = {
        "metric": plan.metric, "seeds": i, "seeds_setting": seeds, "stopped": stopped,
        "epochs": epochs, "alpha": plan.confirm.alpha, "test_kind": "paired t-test",
        "best_params": best_params, "best": best.stats(), "recipe": recipe.stats(),
        "delta": delta, "p_value": p, "detectable": mde, "verdict": call,
        "winner": BEST if call == "helps" else RECIPE,
        "headline": headline(plan.metric, best, recipe, delta, p, call, i, mde, auto)}
    if test:
        out["test"] = _test_winner(best if call == "helps" else recipe, cache)
    return out


def _pairs(best: Arm, recipe: Arm) -> tuple[list[float], list[float]]:
    """The seeds on which both arms finished, as two matched lists."""
    kept = [(x, y) for x, y in zip(best.values, recipe.values, strict=True)
            if math.isfinite(x) and math.isfinite(y)]
    return [x for x, _ in kept], [y for _, y in kept]


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
                     callbacks=[*rec.callbacks(diagnose_fit), *callbacks(label)])
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


def confirm_once(storage: Any, plan: Plan, best: tuple, parent: Run | None,
                 seeds: int | str, test: bool, device: str, say: Any,
                 callbacks: Sequence[Callback]) -> dict[str, Any]:
    """The confirming stage, once per study: a finished one (same best trial and seeds) is
    reused from the study, unless the test split is asked for."""
    import optuna

    from cnnexp.engine.device import resolve_device

    root = optuna.load_study(study_name=plan.study, storage=storage)
    stage, trial = best
    key = {"stage": stage.plan.name, "trial": trial.number, "seeds": seeds,
           "epochs": plan.confirm.epochs, "test": "paired",
           **({"max_seeds": plan.confirm.max_seeds} if seeds == "auto" else {})}
    done = root.user_attrs.get(A.CONFIRM)
    if done and done.get("key") == key and not test:
        say(f"confirm: reusing the finished confirming stage ({done['result']['headline']})")
        return done["result"]
    say(f"confirm: retraining the best configuration ({stage.plan.name}-{trial.number:02d}) "
        "and the recipe on the same " + (f"seeds until the verdict is decided (at most "
                                         f"{plan.confirm.max_seeds})" if seeds == "auto"
                                         else f"{seeds} seed(s)"))
    result = run_confirm(plan, dict(trial.params), device=resolve_device(device), seeds=seeds,
                         parent=parent, test=test, callbacks=lambda label: callbacks,
                         say=say)
    from cnnexp.console import to_jsonable

    root.set_user_attr(A.CONFIRM, to_jsonable({"key": key, "result": {
        k: v for k, v in result.items() if k != "test"}}))
    return result
