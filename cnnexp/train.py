"""`cnnexp train` as a function: build data, open a tracked run, fit, log the outcome."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnexp.data import DataBundle, build_data
from cnnexp.diagnose.log import diagnose_fit, log_classification, log_diagnosis, summary_fields
from cnnexp.engine import Callback, FitResult, fit
from cnnexp.engine.device import resolve_device
from cnnexp.models import ModelSpec, build_model
from cnnexp.schema import Recipe


def run_name(recipe: Recipe) -> str:
    return f"{recipe.name} {recipe.arch.name} lr={recipe.opt.lr:.2g} seed={recipe.train.seed}"


def describe_result(recipe: Recipe, result: FitResult) -> str:
    s = result.summary()
    lines = [f"**{recipe.name}**: {recipe.description}".rstrip(": "), "",
             "| status | epochs | val_acc | best val_acc | val_loss | train_acc | seconds |",
             "|---|---|---|---|---|---|---|",
             f"| {s['status']} | {s['epochs']} | {s['val_acc']:.4f} | {s['best_val_acc']:.4f} "
             f"| {s['val_loss']:.4f} | {s['train_acc']:.4f} | {s['seconds']:.1f} |"]
    if result.reason:
        lines += ["", f"Stopped: {result.reason}"]
    return "\n".join(lines)


def train(recipe: Recipe, *, device: str = "auto", experiment: str | None = None,
          track: bool = True, log_model: bool = False,
          callbacks: Sequence[Callback] = (), data: DataBundle | None = None) -> dict[str, Any]:
    """Train one recipe; returns the summary the CLI prints (run ids when tracked).

    Data, device and model are built before any MLflow run exists, so bad input leaves no
    run."""
    data = data or build_data(recipe)
    dev = resolve_device(device)
    model = build_model(recipe, ModelSpec(data.channels, data.num_classes, data.image_size))
    if not track:
        result = fit(recipe, data=data, device=dev, callbacks=callbacks, model=model)
        return {"run_id": None, "experiment_id": None, **result.summary(),
                **summary_fields(diagnose_fit(result))}
    from cnnexp import tracking

    with tracking.run(experiment or recipe.name, run_name(recipe),
                      tags={**tracking.recipe_tags(recipe), "cnnexp.kind": "train",
                            "cnnexp.engine.device": str(dev)},
                      description=recipe.description or None) as r:
        tracking.log_recipe(r, recipe)
        r.log_dataset(data)
        return _fit_tracked(r, recipe, data, dev, callbacks, log_model, resume=None,
                            model=model)


def resume(run_id: str, *, device: str = "auto", log_model: bool = False,
           callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Continue a tracked run from its last checkpoint, logging into the same run."""
    from cnnexp import tracking
    from cnnexp.engine.checkpoint import load
    from cnnexp.errors import BadInput
    from cnnexp.recipe import load_recipe

    tracking.require_run(run_id)  # BadInput when the store has no such run
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = tracking.download(run_id, "recipe.yaml", Path(tmp))
        ckpt_path = tracking.download(run_id, CHECKPOINT, Path(tmp))
        if recipe_path is None or ckpt_path is None:
            raise BadInput(f"run '{run_id}' has no checkpoint to resume from (checkpoints are "
                           "saved by tracked runs every train.checkpoint_seconds)")
        recipe = load_recipe(str(recipe_path))
        ckpt = load(ckpt_path)
    data = build_data(recipe)
    dev = resolve_device(device)
    with tracking.reopen(run_id) as r:
        return _fit_tracked(r, recipe, data, dev, callbacks, log_model, resume=ckpt)


CHECKPOINT = "checkpoints/last.pt"


def _checkpointer(r: Any, recipe: Recipe) -> Callback:
    """Save into the run's artifact folder when it is local (atomic rename); else save to a
    temporary file and upload it as the artifact after each save."""
    from cnnexp.engine.checkpoint import Checkpointer

    local = r.local_artifact_dir()
    if local is not None:
        return Checkpointer(local / CHECKPOINT, recipe.train.checkpoint_seconds)
    tmp = Path(tempfile.mkdtemp(prefix="cnnexp-ckpt-")) / "last.pt"
    return Checkpointer(tmp, recipe.train.checkpoint_seconds,
                        after_save=lambda p: r.log_artifact(str(p), "checkpoints"))


def _fit_tracked(r: Any, recipe: Recipe, data: DataBundle, dev: torch.device,
                 callbacks: Sequence[Callback], log_model: bool,
                 resume: dict | None, model: torch.nn.Module | None = None) -> dict[str, Any]:
    from cnnexp import tracking

    result = fit(recipe, data=data, device=dev, resume=resume, model=model,
                 callbacks=[tracking.EpochLogger(r), _checkpointer(r, recipe), *callbacks])
    summary = result.summary()
    r.log_metrics({"best_val_acc": summary["best_val_acc"], "seconds": summary["seconds"],
                   "images_per_sec": summary["images_per_sec"], "params": result.params})
    r.set_tags({"cnnexp.status": result.status, "cnnexp.reason": result.reason})
    # The learning-curve diagnosis: tag, description, curves and classification artifacts.
    diag = diagnose_fit(result)
    log_diagnosis(r, diag, result.history, result.best_epoch, recipe.name)
    log_classification(r, result)
    r.describe(describe_result(recipe, result) + "\n\n" + diag.markdown())
    if result.status == "diverged":
        r.end_status = "FAILED"
    if log_model and result.best_state is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "best.pt"
            torch.save(result.best_state, path)
            r.log_artifact(str(path), "model")
    return {"run_id": r.run_id, "experiment_id": r.experiment_id, **summary,
            **summary_fields(diag)}
