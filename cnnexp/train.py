"""`cnnexp train` as a function: one tracked training run, `--resume` of an interrupted one, and
the final evaluation on the held-out test split (`--test`, optionally after `--refit` on
train+val).

Data, model and device are built before any MLflow run exists, so bad input leaves no run."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnexp import tracking
from cnnexp.data import DataBundle, build_data
from cnnexp.diagnose.log import log_classification, log_diagnosis, summary_fields
from cnnexp.diagnose.rules import diagnose_fit
from cnnexp.engine import Callback, FitResult, fit
from cnnexp.engine.checkpoint import Checkpointer
from cnnexp.errors import BadInput, first_line
from cnnexp.final import TestResult, evaluate_test, merged_train_val
from cnnexp.models import ModelSpec, build_model
from cnnexp.noise import binomial_se
from cnnexp.schema import Recipe
from cnnexp.tracking import Kind, Recording, lease
from cnnexp.tracking import tags as T

CHECKPOINT = "checkpoints/last.pt"


def run_name(recipe: Recipe, refit: bool = False) -> str:
    """What tells runs of one recipe apart at a glance in the runs table: the budget (epochs,
    a training subset) as well as the learning rate and seed."""
    subset = f" n={recipe.data.subset}" if recipe.data.subset else ""
    return (f"{recipe.name} {recipe.arch.name} lr={recipe.opt.lr:.2g} "
            f"{recipe.train.epochs}ep{subset} seed={recipe.train.seed}"
            + (" refit" if refit else ""))


def headline(s: dict[str, Any], n_val: int, tested: TestResult | None,
             diagnosis: str | None) -> str:
    """The run's answer, first in its description (on screen when the run page opens): the
    best validation accuracy with its noise, the test figure, the diagnosis."""
    acc = s["best_val_acc"]
    if n_val and acc is not None and 0 <= acc <= 1:
        parts = [f"best val_acc {acc:.4f} ± {binomial_se(acc, n_val):.4f} "
                 f"(epoch {s['best_epoch']} of {s['epochs']})"]
    else:  # no validation split (--refit) or a diverged run
        parts = [f"{s['status']} after {s['epochs']} epoch(s), no validation accuracy"]
    if tested is not None:
        parts.append(f"test_acc {tested.acc:.4f} ± {tested.se:.4f} (n={tested.n})")
    if diagnosis:
        parts.append(f"diagnosis {diagnosis}")
    return "**Result**: " + " · ".join(parts)


def describe_result(recipe: Recipe, result: FitResult, tested: TestResult | None = None,
                    diagnosis: str | None = None) -> str:
    s = result.summary()
    # the recipe's description says what it was written for ("5 epochs, < 10 min"); the
    # budget this run actually had is said beside it, so an override never reads as the recipe
    n_train = result.trainer.data.n_train
    budget = (f"This run: {recipe.train.epochs} epoch(s)"
              + (f" on {n_train:,} training images" if n_train else "")
              + f", batch {recipe.train.batch_size}, seed {recipe.train.seed}.")
    lines = [headline(s, result.trainer.data.n_val, tested, diagnosis), "",
             f"**{recipe.name}**: {recipe.description}".rstrip(": "), "", budget, "",
             "| status | epochs | val_acc | best val_acc | val_loss | train_acc | seconds |",
             "|---|---|---|---|---|---|---|",
             f"| {s['status']} | {s['epochs']} | {s['val_acc']:.4f} | {s['best_val_acc']:.4f} "
             f"| {s['val_loss']:.4f} | {s['train_acc']:.4f} | {s['seconds']:.1f} |"]
    if result.reason:
        lines += ["", f"Stopped: {result.reason}"]
    if tested is not None:
        lines += ["", f"**Test**: {tested.line()}"]
    return "\n".join(lines)


def train(recipe: Recipe, *, device: torch.device, experiment: str | None = None,
          track: bool = True, log_model: bool = False, test: bool = False, refit: bool = False,
          callbacks: Sequence[Callback] = (), data: DataBundle | None = None,
          register: str | None = None) -> dict[str, Any]:
    """Train one recipe; returns the summary the CLI prints (run ids when tracked).

    `test`: afterwards, evaluate on the held-out test split (the best epoch's weights by val
    accuracy). `refit`: train on train+val with no validation split (the last epoch's weights
    are tested)."""
    data = data or build_data(recipe)
    if test:
        data.test()  # no test split: bad input now, not after training
    if refit:
        data = merged_train_val(data)
    model = build_model(recipe, ModelSpec(data.channels, data.num_classes, data.image_size))
    with tracking.tracked(Kind.TRAIN, run_name(recipe, refit), enabled=track,
                          experiment=experiment, recipe=recipe, data=data, device=device,
                          tags={T.REFIT: refit} if refit else None,
                          description=recipe.description or None) as rec, \
            lease.held(rec.run, fresh=True):  # a --resume of this run waits its turn
        return _fit_recorded(rec, recipe, data, device, callbacks, log_model, model=model,
                             test=test, register=register)


def resume(run_id: str, *, device: torch.device, log_model: bool = False, test: bool = False,
           callbacks: Sequence[Callback] = (), register: str | None = None) -> dict[str, Any]:
    """Continue a tracked run from its last checkpoint, logging into the same run (a refit run
    stays a refit run). `run_id` may be a unique prefix. Refused (bad input) while another
    process trains the run (tracking.lease)."""
    run = tracking.require_run(run_id)  # BadInput: no such run, or an ambiguous prefix
    with lease.held(run):
        try:
            recipe, ckpt, refit = _checkpointed(run.run_id)
        except BadInput as exc:
            # nobody trains it (we hold its lease) and it cannot go on: end it rather than
            # leave it RUNNING for good
            if tracking.run_status(run) == "RUNNING":
                tracking.end_if_running(run.run_id, "FAILED", {T.REASON: f"not resumable: {exc}"})
                raise BadInput(f"{exc}; the run was left RUNNING by a process that stopped: "
                               "ended FAILED") from None
            raise
        data = build_data(recipe)
        if test:
            data.test()
        if refit:
            data = merged_train_val(data)
        with tracking.reopened(run.run_id) as rec:
            return _fit_recorded(rec, recipe, data, device, callbacks, log_model, resume=ckpt,
                                 test=test, register=register)


def _checkpointed(run_id: str) -> tuple[Recipe, dict, bool]:
    """The run's recipe, last checkpoint and refit flag; BadInput when it has no checkpoint."""
    from cnnexp.engine.checkpoint import load
    from cnnexp.recipe import load_recipe
    from cnnexp.tracking.store import client, download

    refit = client().get_run(run_id).data.tags.get(T.REFIT) == "True"
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = download(run_id, "recipe.yaml", Path(tmp))
        ckpt_path = download(run_id, CHECKPOINT, Path(tmp))
        if ckpt_path is None:
            raise BadInput(f"run '{run_id}' has no checkpoint to resume from (checkpoints are "
                           "saved by tracked runs every train.checkpoint_seconds, and deleted "
                           "once a run's outcome is recorded)")
        if recipe_path is None:
            raise BadInput(f"run '{run_id}' has a checkpoint but no recipe.yaml artifact to "
                           "rebuild its model from")
        try:
            ckpt = load(ckpt_path)
            if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
                raise ValueError("not a cnnexp training checkpoint")
        except Exception as exc:  # truncated, random bytes, a pickle payload (weights_only)
            raise BadInput(f"run '{run_id}': its checkpoint {CHECKPOINT} is unreadable "
                           f"({first_line(exc)})") from None
        return load_recipe(str(recipe_path)), ckpt, refit


def _checkpointer(rec: Recording, recipe: Recipe) -> list[Checkpointer]:
    """Save into the run's artifact folder when it is local (atomic rename); else save to a
    temporary file and upload it as the artifact after each save."""
    if rec.run is None:
        return []
    local = rec.run.local_artifact_dir()
    if local is not None:
        return [Checkpointer(local / CHECKPOINT, recipe.train.checkpoint_seconds,
                             before_save=rec.flush)]
    tmp = Path(tempfile.mkdtemp(prefix="cnnexp-ckpt-")) / "last.pt"
    return [Checkpointer(tmp, recipe.train.checkpoint_seconds, before_save=rec.flush,
                         after_save=lambda p: rec.log_artifact(str(p), "checkpoints"))]


def _fit_recorded(rec: Recording, recipe: Recipe, data: DataBundle, device: torch.device,
                  callbacks: Sequence[Callback], log_model: bool,
                  resume: dict | None = None, model: torch.nn.Module | None = None,
                  test: bool = False, register: str | None = None) -> dict[str, Any]:
    saving = _checkpointer(rec, recipe)
    result = fit(recipe, data=data, device=device, resume=resume, model=model,
                 callbacks=[*rec.callbacks(diagnose_fit), *saving, *callbacks])
    diag = rec.judged(result, diagnose_fit)
    tested = evaluate_test(result, data) if test and result.status != "diverged" else None
    if tested is not None:
        record_test(rec, tested, data.classes)
    if rec.active:
        # the final run's review material: curves, confusion matrix, top losses, description
        log_diagnosis(rec, diag)
        log_classification(rec, result)
        verdict = getattr(diag, "diagnosis", None)
        rec.describe(describe_result(recipe, result, tested, verdict) + "\n\n" + diag.markdown())
    logged = None
    if rec.active and (log_model or register) and result.status != "diverged":
        # the model as MLflow users load, register and serve it (cnnexp.serving)
        from cnnexp.serving.mlflow_model import log_model as log_mlflow_model

        logged = log_mlflow_model(rec.run, recipe, result, data, register)
    for checkpointer in saving:  # kept until now: a kill before this point stays resumable
        checkpointer.discard()
    return {"run_id": rec.run_id, "experiment_id": rec.experiment_id, **result.summary(),
            **summary_fields(diag), **({"test": tested.as_dict()} if tested else {}),
            **({"model": logged.as_dict()} if logged else {})}


def record_test(rec: Recording, tested: TestResult, classes: list[str]) -> None:
    """The final figure on the run: metrics, which weights, and the test confusion counts
    (its figure is drawn off the training path, by cnnexp.diagnose.figures)."""
    if not rec.active:
        return
    from cnnexp.diagnose.plots import log_confusion

    rec.log_metrics({k: v for k, v in tested.as_dict().items() if isinstance(v, (int, float))})
    rec.set_tags({T.TESTED_WEIGHTS: tested.weights, T.TEST_SPLIT: tested.origin})
    log_confusion(rec, tested.logits, tested.labels, classes, "test")
