"""9. Search vs its peers: cnnexp's default staged search, plain random search, and Optuna's
recommended set-up (TPE + Hyperband pruning), at equal compute, over several search seeds.

Every arm is a real `cnnexp search --no-confirm` (a temporary journal and MLflow store) on
`fashion_mnist`, on the same training pool and validation split, over the recipe's own search
space (six parameters: lr over three decades, weight decay, label smoothing, width, shifts and
batch size; the spread between good and bad configurations is tens of points):

- staged (cnnexp's default): coarse random trials at 1 epoch on half the pool, then a fine
  stage at the full budget that re-trains the best coarse configurations first (successive
  halving) and samples the rest in ranges narrowed around them, with median pruning;
- random: N trials at the full budget (E epochs on the whole pool), no pruning;
- tpe_hyperband: Optuna's TPE sampler with its Hyperband pruner over epochs, at the full budget.

Compute is counted in epochs-equivalent (a trial's epochs x its share of the pool; pruned
trials count the epochs they ran). Every arm gets random search's total, B = N x E: the staged
search's trial counts are planned to fit it, TPE + Hyperband gets twice N trials and is cut at
B. Only values at the full budget (E epochs on the whole pool) count as an arm's result: a
coarse value on half the pool after one epoch cannot stand beside them.

Figures, over seeds: the compute each arm needs to reach random search's final best less one
binomial SE (as % of B; median and IQR; infinite when never reached), each arm's final best at
B (mean ± std over seeds, with the binomial SE of one value), wall seconds, the fidelity of the
staged search's coarse ranking (Spearman rho between the coarse and fine values of the promoted
configurations) and one plot: best-so-far against compute, median and band over seeds.

Budget: a pool of 4,000 training images, 3,000 validation images, E = 3, N = 12, five seeds:
50 minutes measured with `--jobs 2` (seeds in two single-threaded processes) on two CPU cores
that other work also used; one seed at a time takes longer. --quick: 1,000 images, N = 3,
E = 2, 2 seeds (the plumbing only).
"""

from __future__ import annotations

import math
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import median, order, quantile, skipped, summarize
from benchmarks.search_efficiency import Search, run_search
from benchmarks.time_to_accuracy import DEBIAN_ROOT, dataset_files

RECIPE = "fashion_mnist"
TARGET = "<= 40%"
ARMS = ("staged", "random", "tpe_hyperband")
PLOT = Path(__file__).resolve().parent / "results" / "search_vs_peers.png"
SIZES = {  # pool, validation fraction, random's trials N, epochs E, coarse trials
    "default": {"pool": 4000, "val_fraction": 0.05, "n": 12, "epochs": 3, "coarse": 12},
    "quick": {"pool": 1000, "val_fraction": 0.02, "n": 3, "epochs": 2, "coarse": 4},
}


def arms(size: dict[str, Any], seed: int) -> dict[str, tuple[list[str], str, str]]:
    """Per arm: overrides, stages, trials. The staged arm's fine stage holds what is left of
    B after the coarse stage, in full-budget trials."""
    pool, n, e = size["pool"], size["n"], size["epochs"]
    budget = n * e
    coarse_cost = size["coarse"] * 1 * 0.5
    fine = max(1, int((budget - coarse_cost) // e))
    common = [f"data.subset={pool}", f"data.val_fraction={size['val_fraction']}",
              f"search.seed={seed}"]
    full = [f"search.stages.fine.epochs={e}", "search.stages.fine.subset=null"]
    return {
        "staged": ([*common, *full, "search.stages.coarse.epochs=1",
                    f"search.stages.coarse.subset={pool // 2}",
                    "search.stages.fine.pruner=median", "search.stages.fine.sampler=random"],
                   "coarse,fine", f"coarse={size['coarse']},fine={fine}"),
        "random": ([*common, *full, "search.stages.fine.pruner=none",
                    "search.stages.fine.sampler=random", "search.stages.fine.promote=0"],
                   "fine", f"fine={n}"),
        "tpe_hyperband": ([*common, *full, "search.stages.fine.pruner=hyperband",
                           "search.stages.fine.sampler=tpe", "search.stages.fine.promote=0"],
                          "fine", f"fine={2 * n}"),
    }


def one_seed(seed: int, size: dict[str, Any], device: str, threads: int | None) -> dict[str, Any]:
    """All arms for one search seed (in the order a b c, then c b a, ...), each in a fresh
    temporary store. Runs in a worker process when --jobs > 1."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from benchmarks.common import temp_store
    from cnnexp.console import quiet_libraries

    quiet_libraries()
    out: dict[str, Any] = {}
    plan = arms(size, seed)
    with temp_store(), tempfile.TemporaryDirectory() as tmp:
        for arm in order(list(ARMS), seed):
            ov, stages, trials = plan[arm]
            folder = Path(tmp) / f"{arm}{seed}"
            folder.mkdir()
            out[arm] = run_search(ov, stages, trials, size["pool"], folder, device)
            if arm == "staged":
                out["fidelity"] = next((st.get("fidelity") for st in
                                        (out[arm].result or {}).get("stages", [])
                                        if st.get("fidelity")), None)
    return out


def full_budget(search: Search, budget: float) -> list[tuple[float, float, float]]:
    """(cumulative compute, cumulative trial seconds, best full-budget value so far) after each
    trial that finished within the budget; only whole-pool trials that ran every epoch give
    a value (a pruned trial's or a coarse trial's value is not one)."""
    out, cost, secs, best = [], 0.0, 0.0, -math.inf
    for t in search.trials:
        if cost + t.cost > budget + 1e-9:
            break
        cost, secs = cost + t.cost, secs + t.seconds
        if t.value is not None and t.fraction >= 1.0 and t.stage != "coarse":
            best = max(best, t.value)
        out.append((cost, secs, best))
    return out


def reach(curve: list[tuple[float, float, float]], threshold: float) -> float:
    return next((c for c, _, b in curve if b >= threshold), math.inf)


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False,
        jobs: int = 1) -> dict[str, Any]:
    from cnnexp.recipe import load_recipe

    size = SIZES["quick" if quick else "default"]
    base = load_recipe(RECIPE)
    root = Path(base.data.root).expanduser() if base.data.root else Path(DEBIAN_ROOT)
    if dataset_files(root) is None:
        return skipped("search_vs_peers", f"Fashion-MNIST IDX files not found in {root} "
                       "(Debian: apt-get install dataset-fashion-mnist)", TARGET)
    seeds = repeats or (2 if quick else 5)
    if jobs > 1:
        import multiprocessing as mp

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(one_seed, range(seeds), [size] * seeds, [device] * seeds,
                                 [1] * seeds))
    else:
        runs = [one_seed(s, size, device, None) for s in range(seeds)]
    return _result(runs, size, device, jobs)


def _result(runs: list[dict[str, Any]], size: dict[str, Any], device: str,
            jobs: int) -> dict[str, Any]:
    from cnnexp.noise import binomial_se, mean_std

    budget = size["n"] * size["epochs"]
    per_seed, reached = [], {a: [] for a in ARMS}
    finals: dict[str, list[float]] = {a: [] for a in ARMS}
    walls: dict[str, list[float]] = {a: [] for a in ARMS}
    curves: dict[str, list[list[tuple[float, float, float]]]] = {a: [] for a in ARMS}
    for seed, r in enumerate(runs):
        rand = full_budget(r["random"], budget)
        eval_size = r["random"].eval_size
        target_value = rand[-1][2] - binomial_se(rand[-1][2], eval_size)
        row: dict[str, Any] = {"seed": seed, "random_best": round(rand[-1][2], 4),
                               "threshold": round(target_value, 4), "eval_size": eval_size,
                               "fidelity": r.get("fidelity")}
        for arm in ARMS:
            curve = full_budget(r[arm], budget)
            curves[arm].append(curve)
            spent = reach(curve, target_value)
            reached[arm].append(100 * spent / budget)
            final = max((b for _, _, b in curve), default=math.nan)
            finals[arm].append(final)
            walls[arm].append(r[arm].wall)
            row[arm] = {"final_best": round(final, 4), "reach_percent": round(
                100 * spent / budget, 1) if math.isfinite(spent) else None,
                "compute": round(curve[-1][0], 2) if curve else 0.0,
                "wall_seconds": round(r[arm].wall, 1),
                "trials": len(r[arm].trials),
                "pruned": sum(t.state == "pruned" for t in r[arm].trials)}
        per_seed.append(row)
    arms_out = {}
    for arm in ARMS:
        mean, std = mean_std([v for v in finals[arm] if math.isfinite(v)])
        xs = reached[arm]
        arms_out[arm] = {
            "reach_percent_median": median(xs), "reach_percent_q1": quantile(xs, 0.25),
            "reach_percent_q3": quantile(xs, 0.75),
            "reached": sum(math.isfinite(x) for x in xs),
            "final_best_mean": round(mean, 4), "final_best_std": round(std, 4),
            "final_best_se_one_value": round(binomial_se(mean, per_seed[0]["eval_size"]), 4),
            "wall_seconds_median": round(median(walls[arm]), 1)}
    diffs = [a - b for a, b in zip(finals["staged"], finals["tpe_hyperband"], strict=True)]
    d_mean, d_std = mean_std(diffs)
    se = binomial_se(arms_out["staged"]["final_best_mean"], per_seed[0]["eval_size"])
    not_worse = d_mean >= -2 * max(math.hypot(se, se) / math.sqrt(len(diffs)),
                                   (d_std / math.sqrt(len(diffs))) if math.isfinite(d_std)
                                   else 0.0)
    res = summarize("search_vs_peers", "compute_percent", reached["staged"], TARGET, digits=1,
                    label="% of random search's compute for cnnexp's default to reach its best",
                    sides={f"{a}_wall_seconds": walls[a] for a in ARMS}, device=device,
                    size=size, budget_epochs=budget, jobs=jobs, arms=arms_out, seeds=per_seed,
                    staged_minus_tpe_hyperband={"mean": round(d_mean, 4),
                                                "std": round(d_std, 4),
                                                "not_worse_within_noise": bool(not_worse)},
                    plot=str(plot(curves, budget)))
    res["warnings"] = [w.replace("repeat(s)", "search seed(s)") for w in res["warnings"]]
    if not not_worse:
        res["warnings"].append(f"staged's final best is below TPE + Hyperband's by "
                               f"{-d_mean * 100:.2f} pp (more than noise)")
    if jobs > 1:
        res["warnings"].append(f"{jobs} seeds ran at once, one thread each: wall seconds "
                               "compare arms, not machines")
    return res


def plot(curves: dict[str, list[list[tuple[float, float, float]]]], budget: float) -> Path:
    """Best-so-far full-budget value against compute: median over seeds, band min-max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, budget, 121)
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for arm, colour in zip(ARMS, ("C0", "C1", "C2"), strict=True):
        rows = []
        for curve in curves[arm]:
            ys = np.full(grid.shape, np.nan)
            for c, _, b in curve:
                if math.isfinite(b):
                    ys[grid >= c - 1e-9] = b
            rows.append(ys)
        arr = np.array(rows)
        with np.errstate(all="ignore"):
            ok = ~np.isnan(arr).any(axis=0)  # where every seed has a value
            med = np.nanmedian(arr, axis=0)
            lo, hi = np.nanmin(arr, axis=0), np.nanmax(arr, axis=0)
        label = {"staged": "cnnexp default (coarse -> fine, promotion)",
                 "random": "random search", "tpe_hyperband": "Optuna TPE + Hyperband"}[arm]
        ax.plot(grid[ok], med[ok], color=colour, label=f"{label} (median)")
        ax.fill_between(grid[ok], lo[ok], hi[ok], color=colour, alpha=0.15)
    ax.set_xlabel("compute spent (epochs on the whole training pool)")
    ax.set_ylabel("best full-budget validation accuracy")
    ax.set_title(f"fashion_mnist search, {len(curves['random'])} seeds: median and min-max band")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT
