"""fit: epochs of Trainer.train_epoch and evaluation, early stopping, divergence, callbacks.

Knows nothing of MLflow or Optuna: they hook in as callbacks. Hot-loop rules: data is already
on the device; metrics are accumulated on the device and read once per epoch (no .item() per
step); AMP and channels_last on CUDA.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnexp.data import DataBundle, build_data
from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.engine.denormals import flushed_denormals
from cnnexp.engine.device import as_device
from cnnexp.engine.trainer import Trainer
from cnnexp.models import count_params
from cnnexp.schema import Recipe


@dataclass
class FitResult:
    status: str  # completed | early_stopped | diverged | stopped
    history: list[dict[str, float]]
    seconds: float
    train_seconds: float
    images_per_sec: float
    params: int
    model: nn.Module
    trainer: Trainer  # for predictions after the run (confusion matrix, test evaluation)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    reason: str = ""

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}

    @property
    def best_val_acc(self) -> float:
        accs = [h["val_acc"] for h in self.history if math.isfinite(h.get("val_acc", math.nan))]
        return max(accs) if accs else float("nan")

    def summary(self) -> dict[str, float | int | str]:
        last = self.final
        return {"status": self.status, "epochs": len(self.history),
                **{k: last.get(k, float("nan")) for k in
                   ("train_loss", "train_acc", "val_loss", "val_acc")},
                "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
                "seconds": round(self.seconds, 3),
                "images_per_sec": round(self.images_per_sec, 1), "params": self.params}


DIVERGED_FACTOR = 100


def is_diverged(loss: float, num_classes: int) -> bool:
    """Non-finite, or a mean cross-entropy 100x the chance level ln(C): logits have exploded."""
    return not math.isfinite(loss) or loss > DIVERGED_FACTOR * math.log(max(num_classes, 2))


@dataclass
class Progress:
    """Everything `fit` tracks across epochs; checkpointed so a resumed run continues exactly."""

    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    best_loss: float = math.inf
    since_improved: int = 0
    train_seconds: float = 0.0
    images: int = 0

    def update(self, epoch: int, val: dict[str, float], eval_model: nn.Module) -> None:
        key = (val["val_acc"], -val["val_loss"])
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch = key, epoch
            self.best_state = copy.deepcopy(eval_model.state_dict())
        if val["val_loss"] < self.best_loss - 1e-6:
            self.best_loss, self.since_improved = val["val_loss"], 0
        else:
            self.since_improved += 1


def fit(recipe: Recipe, *, data: DataBundle | None = None, device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (), model: nn.Module | None = None,
        resume: dict | None = None) -> FitResult:
    """Train `recipe` for its epochs, evaluating each epoch. Stops early on divergence (non-finite
    or exploding loss), on early-stopping patience, or when a callback sets `state.stop`.
    Data without a validation split (a final run on train+val) trains for every epoch with no
    val metrics, no best epoch and no early stopping.
    `resume` is a checkpoint from cnnexp.engine.checkpoint: training continues after its epoch
    with model, optimiser, schedule, progress and RNG state restored."""
    start = time.perf_counter()
    dev = as_device(device)
    data = data or build_data(recipe)
    trainer = Trainer(recipe, data, dev, model,
                      channels_last=resume.get("channels_last") if resume else None)
    progress = Progress()
    state = FitState(recipe, trainer.model, trainer.data, dev, recipe.train.epochs,
                     len(trainer.train_batches), trainer=trainer, progress=progress)
    if resume is not None:
        from cnnexp.engine.checkpoint import restore

        restore(resume, state)
    for cb in callbacks:
        cb.on_fit_start(state)
    status, reason = "completed", ""
    validated = data.n_val > 0
    for epoch in range(state.epoch + 1, recipe.train.epochs + 1):
        state.epoch = epoch
        t0 = time.perf_counter()
        with flushed_denormals():
            train = trainer.train_epoch(state, callbacks)
        progress.train_seconds += time.perf_counter() - t0
        progress.images += int(train.pop("train_images"))
        diverged = is_diverged(train["train_loss"], data.num_classes)
        val = {"val_loss": math.nan, "val_acc": math.nan} if diverged else \
            trainer.evaluate() if validated else {}
        metrics = {"epoch": epoch, **train, **val, "lr": trainer.schedule.lr,
                   "epoch_seconds": time.perf_counter() - t0}
        state.history.append(metrics)
        if diverged:
            status, reason = "diverged", (f"training loss {train['train_loss']:.3g} in epoch "
                                          f"{epoch} (non-finite or > {DIVERGED_FACTOR} x ln C)")
        else:
            trainer.schedule.epoch_end(val.get("val_loss", math.nan))
            if validated:
                progress.update(epoch, val, trainer.eval_model)
        for cb in callbacks:
            cb.on_epoch_end(state, metrics)
        if diverged:
            break
        if validated and recipe.reg.patience and progress.since_improved >= recipe.reg.patience:
            status = "early_stopped"
            reason = f"val_loss not improved for {progress.since_improved} epochs"
            break
        if state.stop:
            status, reason = "stopped", state.stop_reason
            break
    secs = progress.train_seconds
    result = FitResult(status=status, history=state.history,
                       seconds=time.perf_counter() - start, train_seconds=secs,
                       images_per_sec=progress.images / secs if secs else 0.0,
                       params=count_params(trainer.model), model=trainer.model, trainer=trainer,
                       best_state=progress.best_state, best_epoch=progress.best_epoch,
                       reason=reason)
    for cb in callbacks:
        cb.on_fit_end(state, result)
    return result
