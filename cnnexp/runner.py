"""`cnnexp train` as a function: build data, open a tracked run, fit, log the outcome."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnexp.data import DataBundle, build_data
from cnnexp.device import resolve_device
from cnnexp.engine import Callback, FitResult, fit
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

    Data and device are resolved before any MLflow run exists, so bad input leaves no run."""
    data = data or build_data(recipe)
    dev = resolve_device(device)
    if not track:
        result = fit(recipe, data=data, device=dev, callbacks=callbacks)
        return {"run_id": None, "experiment_id": None, **result.summary()}
    from cnnexp import tracking

    with tracking.run(experiment or recipe.name, run_name(recipe),
                      tags={**tracking.recipe_tags(recipe), "cnnexp.kind": "train",
                            "cnnexp.device": str(dev)},
                      description=recipe.description or None) as r:
        tracking.log_recipe(r, recipe)
        r.log_dataset(data)
        result = fit(recipe, data=data, device=dev,
                     callbacks=[tracking.EpochLogger(r), *callbacks])
        summary = result.summary()
        r.log_metrics({"best_val_acc": summary["best_val_acc"], "seconds": summary["seconds"],
                       "images_per_sec": summary["images_per_sec"], "params": result.params})
        r.set_tags({"cnnexp.status": result.status, "cnnexp.reason": result.reason})
        r.describe(describe_result(recipe, result))
        if result.status == "diverged":
            r.end_status = "FAILED"
        if log_model and result.best_state is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "best.pt"
                torch.save(result.best_state, path)
                r.log_artifact(str(path), "model")
        return {"run_id": r.run_id, "experiment_id": r.experiment_id, **summary}
