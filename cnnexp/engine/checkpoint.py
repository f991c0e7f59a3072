"""Checkpoints: everything needed to continue a run exactly (on CPU, bit for bit).

Saved with torch.save and loaded with `weights_only=True`: only tensors and plain Python
containers go in, so loading a checkpoint cannot execute code."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cnnexp.engine.callbacks import Callback, FitState


def capture(trainer: Any, state: FitState, progress: Any) -> dict[str, Any]:
    """The full training state after `state.epoch` (a `Trainer`, its FitState and Progress)."""
    return {
        "version": 1,
        "epoch": state.epoch,
        "history": state.history,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler else None,
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "progress": {k: v for k, v in vars(progress).items()},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generator": trainer.gen.get_state(),
            "host": _host_state(trainer.aug.host_rng.getstate()),
        },
    }


def _host_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def restore(ckpt: dict[str, Any], trainer: Any, state: FitState, progress: Any) -> None:
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.schedule.load_state_dict(ckpt["schedule"])
    if trainer.scaler and ckpt["scaler"]:
        trainer.scaler.load_state_dict(ckpt["scaler"])
    if trainer.ema is not None and ckpt["ema"] is not None:
        trainer.ema.load_state_dict(ckpt["ema"])
    for key, value in ckpt["progress"].items():
        setattr(progress, key, tuple(value) if key == "best_key" and value else value)
    state.epoch = int(ckpt["epoch"])
    state.history = list(ckpt["history"])
    rng = ckpt["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    trainer.gen.set_state(rng["generator"])
    version, internal, gauss = rng["host"]
    trainer.aug.host_rng.setstate((version, tuple(internal), gauss))


def save_atomic(ckpt: dict[str, Any], path: Path) -> None:
    """Write then rename: a reader (or a crash) never sees a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


class Checkpointer(Callback):
    """Saves the training state after an epoch when `every_seconds` have passed since the last
    save (0 = every epoch), then calls `after_save(path)` (e.g. upload to a remote store).
    Only interrupted runs keep their checkpoint; the file is removed when fit ends."""

    def __init__(self, path: Path, every_seconds: float,
                 after_save: Callable[[Path], None] | None = None) -> None:
        self.path, self.every, self.after_save = path, every_seconds, after_save
        self.last = time.monotonic()

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        if time.monotonic() - self.last < self.every or state.epoch >= state.epochs:
            return
        save_atomic(capture(state.trainer, state, state.progress), self.path)  # type: ignore[attr-defined]
        if self.after_save:
            self.after_save(self.path)
        self.last = time.monotonic()

    def on_fit_end(self, state: FitState, result: Any) -> None:
        """A run that ended by itself needs no resume point: free the disk."""
        self.path.unlink(missing_ok=True)
