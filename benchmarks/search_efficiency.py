"""7. Search efficiency: cnnexp's staged search vs plain random search at the full budget.

Both run cnnexp's own search (in this process, a temporary journal and MLflow store, no
confirming stage: it would cost the same in both) on `fashion_mnist`, on the same training
pool and the same validation split:

- staged: the recipe's stages as configured (coarse: random trials on a training subset for
  few epochs; fine: ranges narrowed around the best coarse trials, median pruning);
- random: one stage (`--stages <last>`) with the same total trial count, every trial at the
  last stage's epochs on the whole training pool, no pruning, the recipe's own (coarse)
  ranges. cnnexp seeds random trials by stage seed and trial number, so random search's first
  trials draw the same configurations as the coarse stage (common random numbers).

The staged search's winner (best.yaml) is then trained once as random search's trials are
(its value on a subset could never stand beside a full-pool trial's); those epochs count.
Compute is counted in epochs-equivalent: a trial's epochs x its training-subset fraction of
the pool; pruned trials count the epochs they ran (their reported steps; a diverged one also
the epoch that diverged). Figure: the compute the staged search had spent when a full-pool
value of its own (the winner's check) first reached the best validation accuracy of random
search, less one
binomial standard error on the validation set (within its noise), as a percentage of random
search's total compute (trials in the order they finished); target <= 40%. A staged search
that never gets there scores infinity. Also reported: wall seconds of both searches, the
staged search's total compute, and the best value of each. Plot: both best-so-far curves
against cumulative epochs, benchmarks/results/search_efficiency.png.

Budget. The training pool is scaled down and each stage's subset with it, in proportion
(the recipe's coarse 10,000 of 54,000 images stays 18.5% of the pool); the validation split
stays the recipe's (6,000 images, evaluated every epoch: about 40% of the time here). Default:
a pool of 5,000 images, the recipe's trial counts and epochs, one search seed (`--repeats N`:
N seeds): about 12 minutes on two quiet CPU cores (random search ~8, staged ~4 with its
winner's check). --quick:
1,000 images, 1,200 validation images, 3 + 2 trials, at most 2 epochs, 2 seeds (smoke run).
--full: all 54,000 images at the recipe's subsets (about 1.5 hours per seed).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import median, order, skipped, summarize, temp_store, timed
from benchmarks.time_to_accuracy import DEBIAN_ROOT, dataset_files

RECIPE = "fashion_mnist"
TARGET = "<= 40%"
POOL = {"default": 5000, "quick": 1000}
PLOT = Path(__file__).resolve().parent / "results" / "search_efficiency.png"


@dataclass
class Trial:
    """One finished trial: its value (completed trials only) and what it cost."""

    stage: str
    number: int
    state: str
    value: float | None
    epochs: int
    fraction: float  # of the training pool
    seconds: float

    @property
    def cost(self) -> float:
        return self.epochs * self.fraction


@dataclass
class Search:
    trials: list[Trial]  # in the order they finished
    wall: float
    eval_size: int
    result: dict[str, Any] | None = None  # the search's own JSON result

    @property
    def total(self) -> float:
        return sum(t.cost for t in self.trials)

    @property
    def best(self) -> float:
        return max((t.value for t in self.trials if t.value is not None), default=math.nan)

    def curve(self) -> list[tuple[float, float, float]]:
        """(cumulative epochs, cumulative trial seconds, best value so far) after each trial."""
        out, cost, secs, best = [], 0.0, 0.0, -math.inf
        for t in self.trials:
            cost, secs = cost + t.cost, secs + t.seconds
            best = max(best, t.value) if t.value is not None else best
            out.append((cost, secs, best))
        return out

    def reach(self, threshold: float, full_pool_only: bool = False) -> tuple[float, float]:
        """Epochs and trial seconds spent when the best value first reached `threshold`
        (`full_pool_only`: counting only values of trials on the whole pool)."""
        cost = secs = 0.0
        for t in self.trials:
            cost, secs = cost + t.cost, secs + t.seconds
            if t.value is not None and t.value >= threshold and \
                    (t.fraction >= 1.0 or not full_pool_only):
                return cost, secs
        return math.inf, math.inf


def plan(quick: bool, full: bool, n_full: int) -> dict[str, Any]:
    """Pool size, and per stage its trials, epochs and (scaled) subset."""
    from cnnexp.recipe import load_recipe

    stages = load_recipe(RECIPE).search["stages"]
    pool = None if full else POOL["quick" if quick else "default"]
    scale = (pool or n_full) / n_full
    out = {}
    for i, (name, st) in enumerate(stages.items()):
        trials, epochs = st["trials"], st["epochs"]
        if quick:
            trials, epochs = max(2, trials // 3), min(epochs, 1 if i == 0 else 2)
        subset = st.get("subset")
        out[name] = {"trials": trials, "epochs": epochs,
                     "subset": max(2, round(subset * scale)) if subset else None}
    return {"pool": pool, "stages": out}


def overrides_for(p: dict[str, Any], seed: int, quick: bool) -> list[str]:
    common = [*([f"data.subset={p['pool']}"] if p["pool"] else []), f"search.seed={seed}",
              *(["data.val_fraction=0.02"] if quick else [])]
    for name, st in p["stages"].items():
        common += [f"search.stages.{name}.epochs={st['epochs']}",
                   f"search.stages.{name}.subset={st['subset'] if st['subset'] else 'null'}"]
    return common


def run_search(overrides: list[str], stages: str, trials: str, pool: int, tmp: Path,
               device: str) -> Search:
    """One `cnnexp search --no-confirm` in this process; its trials read back from storage."""
    import optuna
    from rich.console import Console

    from cnnexp.search import attrs as A
    from cnnexp.search.run import SearchOptions
    from cnnexp.search.run import run_search as cnnexp_search
    from cnnexp.search.storage import open_storage

    name = f"bench-{tmp.name}-{stages.replace(',', '-')}"
    opts = SearchOptions(stages=stages, trials=trials, storage=str(tmp / f"{name}.journal"),
                         study=name, devices=device, out=str(tmp / name), confirm=False)
    found: dict[str, Any] = {}
    wall = timed(lambda: found.update(cnnexp_search(
        RECIPE, overrides, opts, console=Console(quiet=True), lines=False)))
    storage = open_storage(opts.storage)
    done, size = [], 0
    for stage in stages.split(","):
        study = optuna.load_study(study_name=f"{name}/{stage}", storage=storage)
        epochs_subset = study.user_attrs[A.STAGE]
        for t in study.get_trials(deepcopy=False):
            reason = str(t.user_attrs.get(A.REASON, ""))
            ran = len(t.intermediate_values) + (1 if reason.startswith("diverged") else 0)
            used = min(epochs_subset.get("subset") or pool, pool)
            size = size or int(t.user_attrs.get(A.EVAL_SIZE, 0))
            done.append((t.datetime_complete, Trial(
                stage, t.number, t.state.name.lower(), t.value if t.state.name == "COMPLETE"
                else None, ran, used / pool, float(t.user_attrs.get(A.SECONDS, 0.0)))))
    done.sort(key=lambda d: d[0])
    return Search([t for _, t in done], wall, size, found)


def winner_at_full_budget(out: Path, overrides: list[str], epochs: int, device: str) -> Trial:
    """The staged search's winner (its best.yaml) trained once as random search's trials are:
    the last stage's epochs on the whole pool, its value taken as a trial's. A stage's value
    on a subset of the pool cannot be compared with a full-pool trial's; this run can, and
    its epochs are part of what the staged search costs."""
    import time

    from cnnexp.engine import fit
    from cnnexp.recipe import load_recipe
    from cnnexp.search.trial import objective

    cfg = load_recipe(RECIPE).search
    recipe = load_recipe(str(out / "best.yaml"), [*overrides, f"train.epochs={epochs}"])
    t0 = time.perf_counter()
    result = fit(recipe, device=device)
    value = objective(result.history, cfg["metric"], "maximize", cfg.get("summary", "best"))
    return Trial("full-budget check", 0, "complete" if value is not None else "fail", value,
                 len(result.history), 1.0, time.perf_counter() - t0)


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False,
        full: bool = False) -> dict[str, Any]:
    from cnnexp.data import build_data
    from cnnexp.recipe import load_recipe

    base = load_recipe(RECIPE, ["data.val_fraction=0.02"] if quick else [])
    root = Path(base.data.root).expanduser() if base.data.root else Path(DEBIAN_ROOT)
    if dataset_files(root) is None:
        return skipped("search_efficiency", f"Fashion-MNIST IDX files not found in {root} "
                       "(Debian: apt-get install dataset-fashion-mnist)", TARGET)
    seeds = repeats or (2 if quick else 1)  # each repeat is a search seed (see the docstring)
    n_full = build_data(base).n_train
    p = plan(quick, full, n_full)
    pool = p["pool"] or n_full
    last = list(p["stages"])[-1]
    total = sum(st["trials"] for st in p["stages"].values())
    staged_trials = ",".join(f"{n}={st['trials']}" for n, st in p["stages"].items())
    runs: dict[str, list[Search]] = {"staged": [], "random": []}
    with temp_store(), tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            common = overrides_for(p, seed, quick)
            arms = {"staged": (common, ",".join(p["stages"]), staged_trials),
                    "random": ([*common, f"search.stages.{last}.subset=null",
                                f"search.stages.{last}.pruner=none",
                                f"search.stages.{last}.sampler=random"],
                               last, f"{last}={total}")}
            for arm in order(list(arms), seed):
                ov, stages, trials = arms[arm]
                folder = Path(tmp) / f"{arm}{seed}"
                folder.mkdir()
                search = run_search(ov, stages, trials, pool, folder, device)
                if arm == "staged":  # its product is a configuration: check it at full budget
                    out = next(folder.glob("*/best.yaml")).parent
                    search.trials.append(winner_at_full_budget(
                        out, [*([f"data.subset={pool}"] if p["pool"] else []),
                              *(["data.val_fraction=0.02"] if quick else [])],
                        p["stages"][last]["epochs"], device))
                runs[arm].append(search)
    return _result(runs, p, pool, device)


def _result(runs: dict[str, list[Search]], p: dict[str, Any], pool: int,
            device: str) -> dict[str, Any]:
    from cnnexp.noise import binomial_se

    percents, seeds = [], []
    for staged, rand in zip(runs["staged"], runs["random"], strict=True):
        threshold = rand.best - binomial_se(rand.best, rand.eval_size)
        cost, secs = staged.reach(threshold, full_pool_only=True)
        check = staged.trials[-1]
        rand_secs = sum(t.seconds for t in rand.trials)
        percents.append(100 * cost / rand.total)
        seeds.append({"random_best": round(rand.best, 4), "staged_best": round(staged.best, 4),
                      "staged_winner_full_budget": round(check.value, 4)
                      if check.value is not None else None,
                      "staged_best_on_subsets": round(max(
                          (t.value for t in staged.trials[:-1] if t.value is not None),
                          default=math.nan), 4),
                      "threshold": round(threshold, 4), "eval_size": rand.eval_size,
                      "random_epochs": round(rand.total, 2),
                      "staged_epochs_to_reach": round(cost, 2),
                      "staged_epochs_total": round(staged.total, 2),
                      "staged_total_percent": round(100 * staged.total / rand.total, 1),
                      "staged_trial_seconds_to_reach_percent": round(100 * secs / rand_secs, 1),
                      "staged_wall_seconds": round(staged.wall, 1),
                      "random_wall_seconds": round(rand.wall, 1),
                      "pruned": sum(t.state == "pruned" for t in staged.trials),
                      "reached": math.isfinite(cost)})
    res = summarize("search_efficiency", "compute_percent", percents, TARGET, digits=1,
                    label="% of random search's epochs for staged to reach its best",
                    sides={"staged_wall_seconds": [s.wall for s in runs["staged"]],
                           "random_wall_seconds": [s.wall for s in runs["random"]]},
                    device=device, pool=pool, stages=p["stages"], seeds=seeds,
                    staged_total_percent=median([s["staged_total_percent"] for s in seeds]),
                    plot=str(plot(runs)))
    res["warnings"] = [w.replace("repeat(s)", "search seed(s)") for w in res["warnings"]]
    if not all(s["reached"] for s in seeds):
        res["warnings"].append(f"the staged search did not reach random search's best in "
                               f"{sum(not s['reached'] for s in seeds)} of {len(seeds)} seed(s)")
    return res


def plot(runs: dict[str, list[Search]]) -> Path:
    """Best-so-far validation accuracy against cumulative epochs, one line per arm and seed;
    the dotted line is random search's best less one SE, the dot where staged first got there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnexp.noise import binomial_se

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (staged, rand) in enumerate(zip(runs["staged"], runs["random"], strict=True)):
        alpha = 1.0 if i == 0 else 0.45
        for arm, search, colour in (("staged", staged, "C0"), ("random", rand, "C1")):
            pts = [(c, b) for c, _, b in search.curve() if math.isfinite(b)]
            if pts:  # from the first finished trial: before it there is no best
                ax.step([c for c, _ in pts], [b for _, b in pts], where="post", marker=".",
                        color=colour, alpha=alpha, label=f"{arm} search" if i == 0 else None)
        threshold = rand.best - binomial_se(rand.best, rand.eval_size)
        ax.axhline(threshold, color="C1", ls=":", lw=1, alpha=alpha,
                   label="random's best - 1 SE" if i == 0 else None)
        cost, _ = staged.reach(threshold, full_pool_only=True)
        if math.isfinite(cost):
            ax.plot([cost], [threshold], "o", color="C0", alpha=alpha)
    ax.set_xlabel("cumulative compute (epochs on the whole training pool)")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("fashion_mnist: staged search vs random search at the full budget")
    ax.legend(loc="lower right")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT
