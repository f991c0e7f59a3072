"""fit / train_epoch / evaluate. Knows nothing of MLflow or Optuna: they hook in as callbacks.

Hot-loop rules: data is already on the device; metrics are accumulated on the device and read
once per epoch (no .item() per step); AMP and channels_last on CUDA.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cnnexp.data import DataBundle, build_data
from cnnexp.data.augment import Augmenter
from cnnexp.data.loader import Batches
from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.engine.device import resolve_device
from cnnexp.engine.optim import Schedule, build_optimizer
from cnnexp.models import ModelSpec, build_model, count_params
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
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    reason: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}

    @property
    def best_val_acc(self) -> float:
        accs = [h["val_acc"] for h in self.history if math.isfinite(h["val_acc"])]
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


def amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or recipe.train.amp == "off":
        return None
    if recipe.train.amp == "fp16":
        return torch.float16
    if recipe.train.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class Trainer:
    """Holds everything one training run needs; `fit()` below is the functional front door."""

    def __init__(self, recipe: Recipe, data: DataBundle, device: torch.device,
                 model: nn.Module | None = None) -> None:
        self.recipe, self.device = recipe, device
        torch.manual_seed(recipe.train.seed)
        self.data = data.to(device)
        spec = ModelSpec(data.channels, data.num_classes, data.image_size, recipe.reg.dropout)
        self.model = (model or build_model(recipe, spec)).to(device)
        # the training RNG stream starts from the seed however the model was made
        torch.manual_seed(recipe.train.seed)
        self.channels_last = device.type == "cuda" and recipe.train.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.forward = torch.compile(self.model) if recipe.train.compile else self.model
        gen_device = device if device.type in ("cuda", "cpu") else torch.device("cpu")
        self.gen = torch.Generator(gen_device).manual_seed(recipe.train.seed)
        self.aug = Augmenter(recipe.aug, data.mean, data.std, data.num_classes, self.gen).to(device)
        self.train_batches = Batches(self.data, "train", recipe.train.batch_size, device, True,
                                     self.gen, drop_last=True)
        self.val_batches = Batches(self.data, "val", recipe.train.eval_batch_size, device, False)
        self.optimizer = build_optimizer(recipe.opt, self.model)
        self.schedule = Schedule(recipe.opt, self.optimizer, len(self.train_batches),
                                 recipe.train.epochs)
        self.amp = amp_dtype(recipe, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.ema = None
        if recipe.reg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(recipe.reg.ema),
                                     use_buffers=True)

    def _autocast(self):
        return torch.autocast("cuda", dtype=self.amp) if self.amp else nullcontext()

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.float(), target, label_smoothing=self.recipe.reg.label_smoothing)
        if self.recipe.reg.l1:
            l1 = sum(p.abs().sum() for p in self.model.parameters() if p.ndim > 1)
            loss = loss + self.recipe.reg.l1 * l1
        return loss

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augment, forward, backward, (clip), optimiser step. Returns the loss, the logits and
        the targets (class indices or mixed probabilities), all still on the device."""
        x, target = self.aug.train_batch(xb, yb)
        with self._autocast():
            logits = self.forward(self._prep(x))
        loss = self.loss(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.recipe.opt.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.opt.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss, logits, target

    def train_epoch(self, state: FitState, callbacks: Sequence[Callback]) -> dict[str, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for i, (xb, yb) in enumerate(self.train_batches):
            loss, logits, target = self.train_step(xb, yb)
            self.schedule.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            n = len(yb)
            seen += n
            loss_sum += loss.detach() * n
            labels = target if target.ndim == 1 else target.argmax(1)
            correct += (logits.detach().argmax(1) == labels).sum()
            for cb in callbacks:
                cb.on_batch_end(state, i)
        return {"train_loss": float(loss_sum) / max(seen, 1),
                "train_acc": int(correct) / max(seen, 1), "train_images": seen}

    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluation uses: the EMA copy when reg.ema is on."""
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict_logits(self, model: nn.Module | None = None, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels over a split (TTA: average with the flipped image)."""
        model = model or self.eval_model
        model.eval()
        batches = self.val_batches if split == "val" else Batches(
            self.data, "train", self.recipe.train.eval_batch_size, self.device, False)
        outs, ys = [], []
        for xb, yb in batches:
            x = self._prep(self.aug.normalize(xb))
            with self._autocast():
                logits = model(x).float()
                if self.recipe.aug.tta:
                    logits = (logits + model(x.flip(3)).float()) / 2
            outs.append(logits)
            ys.append(yb)
        return torch.cat(outs), torch.cat(ys)

    def evaluate(self) -> dict[str, float]:
        logits, y = self.predict_logits()
        return {"val_loss": float(F.cross_entropy(logits, y)),
                "val_acc": float((logits.argmax(1) == y).float().mean())}


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
    `resume` is a checkpoint from cnnexp.engine.checkpoint: training continues after its epoch
    with model, optimiser, schedule, progress and RNG state restored."""
    start = time.perf_counter()
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    data = data or build_data(recipe)
    trainer = Trainer(recipe, data, dev, model)
    state = FitState(recipe, trainer.model, trainer.data, dev, recipe.train.epochs,
                     len(trainer.train_batches))
    state.trainer = trainer  # type: ignore[attr-defined]  # for callbacks that need internals
    progress = Progress()
    if resume is not None:
        from cnnexp.engine.checkpoint import restore

        restore(resume, trainer, state, progress)
    state.progress = progress  # type: ignore[attr-defined]
    for cb in callbacks:
        cb.on_fit_start(state)
    status, reason = "completed", ""
    for epoch in range(state.epoch + 1, recipe.train.epochs + 1):
        state.epoch = epoch
        t0 = time.perf_counter()
        train = trainer.train_epoch(state, callbacks)
        progress.train_seconds += time.perf_counter() - t0
        progress.images += int(train.pop("train_images"))
        diverged = is_diverged(train["train_loss"], data.num_classes)
        val = {"val_loss": math.nan, "val_acc": math.nan} if diverged else trainer.evaluate()
        metrics = {"epoch": epoch, **train, **val, "lr": trainer.schedule.lr,
                   "epoch_seconds": time.perf_counter() - t0}
        state.history.append(metrics)
        if diverged:
            status, reason = "diverged", (f"training loss {train['train_loss']:.3g} in epoch "
                                          f"{epoch} (non-finite or > {DIVERGED_FACTOR} x ln C)")
        else:
            trainer.schedule.epoch_end(val["val_loss"])
            progress.update(epoch, val, trainer.eval_model)
        for cb in callbacks:
            cb.on_epoch_end(state, metrics)
        if diverged:
            break
        if recipe.reg.patience and progress.since_improved >= recipe.reg.patience:
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
                       params=count_params(trainer.model), model=trainer.model,
                       best_state=progress.best_state, best_epoch=progress.best_epoch,
                       reason=reason)
    result.extra["trainer"] = trainer
    for cb in callbacks:
        cb.on_fit_end(state, result)
    return result
