"""`cnnexp ablate`: every arm × seed is a full `engine.fit` with the same budget, tracked as
ablation → arm → seed nested MLflow runs; the table (ablate_stats / ablate_table) becomes the
parent run's description and artifacts, and is written to a local folder."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnexp.ablate.plan import Arm, plan, recipe_hash
from cnnexp.ablate.progress import AblationProgress
from cnnexp.ablate.retune import RetuneResult, metric_value, retune_epochs, retune_lr
from cnnexp.ablate.spec import MODES, AblationSpec, load_spec
from cnnexp.ablate.stats import Row, SeedResult, summarize
from cnnexp.ablate.table import TableInfo, bar_chart, html_page, markdown, records, write_csv
from cnnexp.console import to_jsonable
from cnnexp.data import DataBundle, build_data
from cnnexp.diagnose.rules import diagnose_fit
from cnnexp.engine import fit
from cnnexp.errors import BadInput, did_you_mean
from cnnexp.metrics import higher_is_better
from cnnexp.models import ModelSpec, build_model
from cnnexp.schema import Recipe
from cnnexp.tracking import Kind, Recording, query, tracked
from cnnexp.tracking import tags as T

RESULT_METRIC = "ablation_metric"


@dataclass
class Outcome:
    summary: dict[str, Any]  # the --json object
    rows: list[Row]
    info: TableInfo
    seeds: dict[str, list[SeedResult]]



@dataclass
class Options:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    experiment: str | None = None
    out: Path | None = None
    retune: bool = False
    resume: bool = False
    progress: bool = False
    say: Callable[[str], None] = lambda _msg: None


def prepare(spec_ref: str | None, recipe_ref: str | None, overrides: list[str],
            mode: str | None = None, seeds: int | None = None
            ) -> tuple[str, AblationSpec, list[Arm]]:
    """Spec + command-line choices -> (name, spec, composed arms); BadInput on any problem,
    before anything trains."""
    name, spec = load_spec(spec_ref)
    if mode is not None:
        if mode not in MODES:
            raise BadInput(f"unknown --mode '{mode}'{did_you_mean(mode, MODES)}")
        spec = spec.model_copy(update={"mode": mode})
    if seeds is not None:
        if seeds < 1:
            raise BadInput(f"--seeds must be at least 1 (got {seeds})")
        spec = spec.model_copy(update={"seeds": seeds})
    return name, spec, plan(spec, recipe_ref, overrides)


def default_out(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path("outputs") / "ablate"  # outputs/ is where every command writes its files
    path, i = root / f"{name}-{stamp}", 1
    while path.exists():
        i += 1
        path = root / f"{name}-{stamp}-{i}"
    return path


class _Data:
    """Datasets built once per distinct data section (arms rarely change it)."""

    def __init__(self) -> None:
        self.cache: dict[str, DataBundle] = {}

    def get(self, recipe: Recipe) -> DataBundle:
        key = json.dumps(recipe.data.model_dump(mode="json"), sort_keys=True)
        if key not in self.cache:
            self.cache[key] = build_data(recipe)
        return self.cache[key]


def _finished_seeds(exp_id: str, name: str) -> list[Any]:
    """Earlier seed runs of this ablation that got as far as logging their result."""
    return [r for r in query.search([exp_id], T.kind_filter(Kind.SEED))
            if r.data.tags.get(T.ABLATION) == name and T.STATUS in r.data.tags
            and RESULT_METRIC in r.data.metrics]


def end_leftovers(exp_id: str, name: str, parent_id: str | None) -> int:
    """Runs of this ablation an earlier stop left RUNNING (the store could not take their end:
    a full disk, a server gone) are ended FAILED when it is resumed; returns how many."""
    from cnnexp.tracking import end_if_running

    left = [r for r in query.search([exp_id], "attributes.status = 'RUNNING'")
            if r.data.tags.get(T.ABLATION) == name and r.info.run_id != parent_id]
    for r in left:
        end_if_running(r.info.run_id, "FAILED", {
            T.REASON: f"left RUNNING by an earlier stop; ended by --resume ({parent_id})"})
    return len(left)


def _tuned_arms(exp_id: str, name: str) -> list[Any]:
    """Earlier arm runs of this ablation whose LR search finished."""
    return [r for r in query.search([exp_id], T.kind_filter(Kind.ARM))
            if r.data.tags.get(T.ABLATION) == name and T.TUNED_LR in r.data.tags]


def _reused(run: Any, metric: str) -> SeedResult:
    m = run.data.metrics
    logged = {"val_acc": "final_val_acc", "val_loss": "final_val_loss"}.get(metric, metric)
    return SeedResult(value=m.get(logged, math.nan),
                      train_acc=m.get("final_train_acc", math.nan),
                      val_acc=m.get("final_val_acc", math.nan),
                      status=run.data.tags[T.STATUS], params=int(m.get("params", 0)),
                      seconds=m.get("seconds", 0.0), run_id=run.info.run_id, reused=True,
                      diagnosis=run.data.tags.get(T.DIAGNOSIS, ""))


def _train_seed(parent: Recording, arm: Arm, recipe: Recipe, seed_index: int, name: str,
                metric: str, data: _Data, dev: torch.device, prog: AblationProgress
                ) -> SeedResult:
    tags = {T.ABLATION: name, T.ARM: arm.label, T.SEED: recipe.train.seed,
            T.RECIPE_HASH: recipe_hash(recipe)}
    with tracked(Kind.SEED, f"{arm.label} seed={recipe.train.seed}", parent=parent,
                 recipe=recipe, device=dev, tags=tags) as rec:
        result = fit(recipe, data=data.get(recipe), device=dev, callbacks=[
            *rec.callbacks(diagnose_fit),
            *prog.callbacks(f"{arm.label} · seed {seed_index + 1}")])
        last = result.final
        out = SeedResult(value=metric_value(result, metric),
                         train_acc=last.get("train_acc", math.nan),
                         val_acc=last.get("val_acc", math.nan), status=result.status,
                         params=result.params, seconds=result.seconds, run_id=rec.run_id or "",
                         diagnosis=diagnose_fit(result).diagnosis)
        # logged last: --resume reuses a seed run only when its result is there
        rec.log_metrics({"final_train_acc": out.train_acc, "final_val_acc": out.val_acc,
                         "final_val_loss": last.get("val_loss", math.nan),
                         RESULT_METRIC: out.value})
        return out


def _retune(arm: Arm, arm_run: Recording, spec: AblationSpec, data: _Data, dev: torch.device,
            prog: AblationProgress, earlier: list[Any]) -> float:
    key = recipe_hash(arm.recipe)
    for run in earlier:  # --resume: an arm whose search already finished keeps its LR
        if run.data.tags.get(T.ARM_HASH) == key and T.TUNED_LR in run.data.tags:
            lr = float(run.data.tags[T.TUNED_LR])
            arm_run.set_tags({T.TUNED_LR: lr, T.TUNED_FROM: run.info.run_id})
            return lr
    first = arm.seed_recipe(0)
    res: RetuneResult = retune_lr(first, spec.retune, spec.metric, data=data.get(first),
                                  device=dev, callbacks=prog.callbacks(f"{arm.label} · LR search"),
                                  seed=first.train.seed)
    arm_run.log_text(res.csv(), "retune.csv")
    arm_run.log_params({"retune.low": res.low, "retune.high": res.high,
                        "retune.epochs": res.epochs, "retune.trials": len(res.trials)})
    arm_run.set_tags({T.TUNED_LR: res.lr})
    return res.lr


def _run_arm(parent: Recording, arm: Arm, spec: AblationSpec, name: str, opts: Options,
             data: _Data, dev: torch.device, prog: AblationProgress,
             earlier: dict[Kind, list[Any]]) -> tuple[list[SeedResult], float | None,
                                                      str | None]:
    tags = {T.ABLATION: name, T.ARM: arm.label, T.ARM_HASH: recipe_hash(arm.recipe)}
    done = {r.data.tags.get(T.RECIPE_HASH): r for r in earlier.get(Kind.SEED, [])
            if r.data.tags.get(T.ARM) == arm.label}
    with tracked(Kind.ARM, arm.label, parent=parent, recipe=arm.recipe, tags=tags) as arm_run:
        arm_run.log_params({"change": " ".join(arm.change) or "-",
                            "overrides": " ".join(arm.overrides) or "-"})
        lr = _retune(arm, arm_run, spec, data, dev, prog, earlier.get(Kind.ARM, [])) \
            if opts.retune else None
        results: list[SeedResult] = []
        for i in range(spec.seeds):
            recipe = arm.seed_recipe(i, lr)
            found = done.get(recipe_hash(recipe)) if opts.resume else None
            if found is not None:
                results.append(_reused(found, spec.metric))
                prog.skip(recipe.train.epochs)
            else:
                results.append(_train_seed(arm_run, arm, recipe, i, name, spec.metric, data,
                                           dev, prog))
            opts.say(_seed_line(arm.label, recipe.train.seed, spec.metric, results[-1]))
        finished = [r.value for r in results if math.isfinite(r.value)]
        arm_run.log_metrics({"mean": sum(finished) / len(finished) if finished else math.nan,
                             "n": len(finished), "diverged": len(results) - len(finished)})
        arm_run.set_tags({T.REUSED_RUNS: " ".join(r.run_id for r in results if r.reused)})
        return results, lr, arm_run.run_id


def _seed_line(label: str, seed: int, metric: str, r: SeedResult) -> str:
    what = "diverged" if r.diverged else f"{metric}={r.value:.4f}"
    how = "reused" if r.reused else f"{r.seconds:.1f}s"
    return f"{label} · seed {seed}: {what} ({how})"


def table_info(name: str, spec: AblationSpec, arms: Sequence[Arm], retuned: bool,
               epochs: int) -> TableInfo:
    notes = [f"Mode {spec.mode}; {spec.seeds} seed(s) per arm, {epochs} epoch(s) each; "
             f"baseline recipe `{arms[0].recipe.name}`; metric `{spec.metric}` "
             f"({'best epoch' if spec.metric == 'best_val_acc' else 'final epoch'}).",
             f"Verdict: Welch t-test over seeds, p < {spec.alpha:g} → helps/hurts by the sign "
             "of Δ; otherwise within noise; n/a below 2 seeds.",
             "train–val gap = final train accuracy (augmented, dropout on) − val accuracy."]
    if spec.mode == "cumulative":
        notes.append("Cumulative: each row adds its change on top of the previous row; Δ and "
                     "the verdict compare with the previous row.")
    if retuned:
        notes.append(f"LR retuned per arm: {spec.retune.trials} trials, log-uniform in "
                     f"[lr/{spec.retune.factor:g}, lr×{spec.retune.factor:g}], short runs; "
                     "seeds then run at the arm's best LR.")
    changes = {a.label: " ".join(a.change) for a in arms}
    title = f"Ablation {name} ({spec.mode}, {spec.metric})"
    return TableInfo(title, spec.metric, higher_is_better(spec.metric), spec.mode, changes, notes, retuned)


def write_outputs(out: Path, rows: Sequence[Row], info: TableInfo,
                  seeds: dict[str, list[SeedResult]]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "table.md", "csv": out / "table.csv", "html": out / "table.html",
             "chart": out / "chart.png", "seeds": out / "seeds.csv"}
    paths["md"].write_text(markdown(rows, info), encoding="utf-8")
    paths["html"].write_text(html_page(rows, info), encoding="utf-8")
    write_csv(rows, info, paths["csv"])
    with paths["seeds"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "seed_index", "value", "train_acc", "val_acc", "status", "seconds",
                    "run_id", "reused"])
        for arm, results in seeds.items():
            w.writerows([arm, i, f"{r.value:.6g}", f"{r.train_acc:.6g}", f"{r.val_acc:.6g}",
                         r.status, f"{r.seconds:.3f}", r.run_id, r.reused]
                        for i, r in enumerate(results))
    bar_chart(rows, info).savefig(paths["chart"], dpi=120)
    return paths


def record_verdicts(rows: Sequence[Row], arm_runs: dict[str, str | None], metric: str) -> None:
    """Each arm run gets its row of the table (std, Δ, p as metrics, the verdict as a tag), so
    the MLflow arms view (tracking/views.py) reads like the ablation table."""
    from cnnexp.tracking import attach

    accuracy = metric.endswith("_acc")  # accuracy differences in pp, as the table gives them
    for row in rows:
        run = attach(arm_runs.get(row.arm))
        if run is None:
            continue
        # rounded as the table rounds them: the runs table shows what a reader can use
        values = {"std": round(row.std, 4), "p_value": float(f"{row.p_value:.2g}"),
                  **({"delta_pp": round(row.delta * 100, 2)} if accuracy
                     else {"delta": round(row.delta, 4)})}
        run.log_batch(metrics={k: v for k, v in values.items() if math.isfinite(v)},
                      tags={T.VERDICT: row.verdict or "baseline"})


def check_arms(arms: Sequence[Arm], data: _Data) -> None:
    """Build every arm's data and model once before any run exists: bad data paths and models
    that cannot run on the data (a zoo model on small images, BatchNorm on batches of one) are
    bad input, not a FAILED run half-way through the table."""
    for arm in arms:
        bundle = data.get(arm.recipe)
        build_model(arm.recipe, ModelSpec(bundle.channels, bundle.num_classes, bundle.image_size))


def run_ablation(name: str, spec: AblationSpec, arms: Sequence[Arm], opts: Options) -> Outcome:
    dev = opts.device
    data = _Data()
    check_arms(arms, data)
    experiment = opts.experiment or f"ablation-{name}"
    epochs = arms[0].recipe.train.epochs
    per_arm = (retune_epochs(arms[0].recipe, spec.retune) * spec.retune.trials
               if opts.retune else 0) + spec.seeds * epochs
    tags = {T.ABLATION: name, T.MODE: spec.mode, T.RECIPE: arms[0].recipe.name}
    with tracked(Kind.ABLATION, f"ablation {name}", experiment=experiment, tags=tags) as parent, \
            AblationProgress(opts.progress, total_epochs=per_arm * len(arms)) as prog:
        parent.log_params({"mode": spec.mode, "seeds": spec.seeds, "metric": spec.metric,
                           "baseline": arms[0].recipe.name, "epochs": epochs,
                           "retune_lr": opts.retune, "arms": " | ".join(a.label for a in arms)})
        exp_id = parent.experiment_id or ""
        earlier = {Kind.SEED: _finished_seeds(exp_id, name),
                   Kind.ARM: _tuned_arms(exp_id, name)} if opts.resume else {}
        if opts.resume and exp_id and (ended := end_leftovers(exp_id, name, parent.run_id)):
            opts.say(f"ended {ended} run(s) an earlier stop left RUNNING (marked FAILED)")
        seeds: dict[str, list[SeedResult]] = {}
        lrs: list[float | None] = []
        arm_runs: dict[str, str | None] = {}
        for arm in arms:
            seeds[arm.label], lr, arm_runs[arm.label] = _run_arm(parent, arm, spec, name, opts,
                                                                 data, dev, prog, earlier)
            lrs.append(lr)
        rows = summarize(list(seeds.items()), higher_is_better=higher_is_better(spec.metric),
                         alpha=spec.alpha, cumulative=spec.mode == "cumulative",
                         lrs=lrs if opts.retune else None)
        record_verdicts(rows, arm_runs, spec.metric)
        info = table_info(name, spec, arms, opts.retune, epochs)
        out = opts.out or default_out(name)
        paths = write_outputs(out, rows, info, seeds)
        summary = {"name": name, "baseline": rows[0].arm, "recipe": arms[0].recipe.name,
                   "mode": spec.mode, "metric": spec.metric, "seeds": spec.seeds,
                   "retuned_lr": opts.retune, "rows": records(rows, info),
                   "table_path": str(paths["md"]), "out_dir": str(out),
                   "experiment_id": parent.experiment_id, "parent_run_id": parent.run_id}
        paths["json"] = out / "summary.json"
        paths["json"].write_text(json.dumps(to_jsonable(summary), indent=1), encoding="utf-8")
        for path in paths.values():
            parent.log_artifact(str(path), "ablation")
        parent.describe(markdown(rows, info))
        return Outcome(summary, rows, info, seeds)
