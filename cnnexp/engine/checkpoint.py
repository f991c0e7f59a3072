"""Checkpoints: everything needed to continue a run exactly (on CPU, bit for bit).

Saved with torch.save and loaded with `weights_only=True`: only tensors and plain Python
containers go in, so loading a checkpoint cannot execute code."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.errors import BadInput, first_line
from cnnexp.files import replaced

VERSION = 1


def capture(state: FitState) -> dict[str, Any]:
    """The full training state after `state.epoch`: the Trainer's, fit's progress, history."""
    assert state.trainer is not None and state.progress is not None
    return {"version": VERSION, "epoch": state.epoch, "history": state.history,
            "progress": asdict(state.progress), **state.trainer.state_dict()}


def restore(ckpt: dict[str, Any], state: FitState) -> None:
    assert state.trainer is not None and state.progress is not None
    try:
        state.trainer.load_state_dict(ckpt)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        # the run's recipe.yaml no longer describes the model that was saved
        raise BadInput("the checkpoint does not fit the model its recipe.yaml builds "
                       f"({first_line(exc)[:200]})") from None
    for key, value in ckpt["progress"].items():
        setattr(state.progress, key, tuple(value) if key == "best_key" and value else value)
    state.epoch = int(ckpt["epoch"])
    state.history = list(ckpt["history"])


def save(ckpt: dict[str, Any], path: Path) -> None:
    """Write then rename: a reader (or a crash) never sees a half-written checkpoint."""
    with replaced(path) as tmp:
        torch.save(ckpt, tmp)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


class Checkpointer(Callback):
    """Saves the training state after an epoch when `every_seconds` have passed since the last
    save (0 = every epoch), after `before_save()` (e.g. wait until the epochs' metrics are in
    the store: a resume point implies its history is recorded), then calls `after_save(path)`
    (e.g. upload to a remote store). The caller removes the file (`discard`) once the run's
    outcome is recorded: a process killed between the last epoch and that record can still
    be resumed."""

    def __init__(self, path: Path, every_seconds: float,
                 after_save: Callable[[Path], None] | None = None,
                 before_save: Callable[[], None] | None = None) -> None:
        self.path, self.every, self.after_save = path, every_seconds, after_save
        self.before_save = before_save
        self.last = time.monotonic()

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        if time.monotonic() - self.last < self.every or state.epoch >= state.epochs:
            return
        if self.before_save:
            self.before_save()
        save(capture(state), self.path)
        if self.after_save:
            self.after_save(self.path)
        self.last = time.monotonic()

    def discard(self) -> None:
        """A run whose outcome is recorded needs no resume point: free the disk."""
        self.path.unlink(missing_ok=True)
