"""`cnnexp bench`: images/sec for a recipe on a device, and where the time goes.

Two passes over the same steps after a warm-up: a free-running one for throughput (no syncs
beyond the engine's own), then a synchronised one that times each phase: data (batch + batched
augmentation), forward+backward, optimiser step. Logging is timed as one per-epoch MLflow
metrics batch into a throw-away local store, spread over the epoch's steps."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from cnnexp.data import build_data
from cnnexp.engine.trainer import Trainer
from cnnexp.schema import Recipe


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def _batches(trainer: Trainer, steps: int):
    while True:
        for batch in trainer.train_batches:
            yield batch
            steps -= 1
            if steps <= 0:
                return



def _logging_seconds_per_epoch() -> float:
    """One per-epoch metrics batch into a temporary SQLite store (median of 5)."""
    from cnnexp import tracking

    with tempfile.TemporaryDirectory() as tmp:
        import os

        old = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"
        try:
            with tracking.run("bench", "bench") as r:
                times = []
                for step in range(5):
                    t0 = time.perf_counter()
                    r.log_metrics({k: 0.5 for k in ("train_loss", "train_acc", "val_loss",
                                                    "val_acc", "lr", "epoch_seconds")}, step)
                    times.append(time.perf_counter() - t0)
        finally:
            if old is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = old
    return sorted(times)[2]


def bench(recipe: Recipe, *, device: torch.device, steps: int = 50, warmup: int = 5,
          with_logging: bool = True) -> dict[str, Any]:
    dev = device
    trainer = Trainer(recipe, build_data(recipe), dev)
    trainer.model.train()
    sync = _sync(dev)
    bs = recipe.train.batch_size
    # throughput: the engine's own step (grad scaler and clipping included)
    for x, y in _batches(trainer, warmup):
        trainer.train_step(x, y)
    sync()
    t0 = time.perf_counter()
    n = 0
    for x, y in _batches(trainer, steps):
        trainer.train_step(x, y)
        n += len(y)
    sync()
    free_seconds = time.perf_counter() - t0
    phases = {"data": 0.0, "forward_backward": 0.0, "optimizer": 0.0}
    it = _batches(trainer, steps)
    for _ in range(steps):
        t_a = time.perf_counter()
        x, y = next(it)
        x, t = trainer.aug.train_batch(x, y)
        sync()
        t_b = time.perf_counter()
        trainer.backward(trainer.forward_loss(x, t)[0])
        sync()
        t_c = time.perf_counter()
        trainer.step()
        sync()
        phases["data"] += t_b - t_a
        phases["forward_backward"] += t_c - t_b
        phases["optimizer"] += time.perf_counter() - t_c
    per_step = {k: v / steps for k, v in phases.items()}
    if with_logging:
        per_step["logging"] = _logging_seconds_per_epoch() / max(1, len(trainer.train_batches))
    total = sum(per_step.values())
    return {
        "recipe": recipe.name, "device": str(dev), "batch_size": bs, "steps": steps,
        "images_per_sec": n / free_seconds,
        "amp": str(trainer.amp).replace("torch.", "") if trainer.amp else "off",
        "channels_last": trainer.channels_last,
        "ms_per_step": {k: round(v * 1000, 3) for k, v in per_step.items()},
        "share": {k: round(v / total, 4) for k, v in per_step.items()},
    }
