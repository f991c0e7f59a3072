"""The Trainer: one run's model, data on the device, augmentation, optimiser and schedule, and
the public steps everything else builds on (the fit loop, the LR range test, sanity checks,
`cnnexp bench`).

    x = trainer.prepare(x)                    memory format the model wants
    with trainer.autocast(): ...              the run's mixed precision (CUDA only)
    loss, logits = trainer.forward_loss(x, t) forward + the training loss
    trainer.backward(loss); trainer.step()    gradients (scaled, clipped) and the update
    trainer.train_step(xb, yb)                augment + all of the above
    trainer.predict_logits("val")             eval-mode logits over a split (val: reused
                                              until the weights change)
    trainer.state_dict() / load_state_dict()  everything a checkpoint needs
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnexp.data import DataBundle
from cnnexp.data.augment import Augmenter
from cnnexp.data.loader import Batches
from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.engine.eval_batch import eval_batch_size
from cnnexp.engine.layout import choose_channels_last
from cnnexp.engine.optim import Schedule, build_optimizer
from cnnexp.models import ModelSpec, build_model
from cnnexp.schema import Recipe


def amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA: CPUs without native bf16 run autocast ~10x slower."""
    if device.type != "cuda" or recipe.train.amp == "off":
        return None
    if recipe.train.amp == "fp16":
        return torch.float16
    if recipe.train.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class Trainer:
    """Holds everything one training run needs; `engine.fit` is the functional front door."""

    def __init__(self, recipe: Recipe, data: DataBundle, device: torch.device,
                 model: nn.Module | None = None, channels_last: bool | None = None) -> None:
        self.recipe, self.device = recipe, device
        self.data = data.to(device)
        spec = ModelSpec(data.channels, data.num_classes, data.image_size)
        self.model = (model or build_model(recipe, spec)).to(device)
        # The one place the training seed is set: the training RNG stream (dropout, shuffling,
        # augmentation) starts from it however the model was made (build_model seeds its own
        # initialisation without touching the global stream).
        torch.manual_seed(recipe.train.seed)
        size = (min(recipe.train.batch_size, max(data.n_train, 1)), data.channels,
                 data.image_size, data.image_size)
        # a resumed run keeps the layout it started with (the numbers stay bit-identical)
        self.channels_last = channels_last if channels_last is not None else \
            choose_channels_last(recipe.train.channels_last, self.model,
                                 torch.full(size, 0.5, device=device), device)
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
        self.eval_batch_size = eval_batch_size(recipe.train.eval_batch_size, self.model,
                                               self.prepare(torch.full(size[1:], 0.5,
                                                                       device=device)[None]),
                                               device)
        self.val_batches = Batches(self.data, "val", self.eval_batch_size, device, False)
        self.optimizer = build_optimizer(recipe.opt, self.model)
        self.schedule = Schedule(recipe.opt, self.optimizer, len(self.train_batches),
                                 recipe.train.epochs)
        self.amp = amp_dtype(recipe, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self._val_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self.ema = None
        if recipe.reg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(recipe.reg.ema),
                                     use_buffers=True)

    # --- the public steps -------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=self.amp) if self.amp else nullcontext()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The memory format the model was converted to."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def inputs(self, xb: torch.Tensor) -> torch.Tensor:
        """A raw (uint8) batch as the model sees it at evaluation: normalised, prepared."""
        return self.prepare(self.aug.normalize(xb))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (with the recipe's label smoothing; mixed targets from mixup/cutmix)
        plus the L1 penalty. Weight decay lives in the optimiser."""
        loss = F.cross_entropy(logits.float(), target,
                               label_smoothing=self.recipe.reg.label_smoothing)
        if self.recipe.reg.l1:
            l1 = sum(p.abs().sum() for p in self.model.parameters() if p.ndim > 1)
            loss = loss + self.recipe.reg.l1 * l1
        return loss

    def forward_loss(self, x: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward an augmented, normalised batch; returns (loss, logits)."""
        with self.autocast():
            logits = self.forward(self.prepare(x))
        return self.loss(logits, target), logits

    def backward(self, loss: torch.Tensor) -> None:
        """Fresh gradients of `loss` (unscaled and clipped when the recipe asks)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.recipe.opt.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.opt.grad_clip)

    def step(self) -> None:
        """The optimiser update (through the grad scaler under fp16)."""
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augment, forward, backward, (clip), optimiser step. Returns the loss, the logits and
        the targets (class indices or mixed probabilities), all still on the device."""
        x, target = self.aug.train_batch(xb, yb)
        loss, logits = self.forward_loss(x, target)
        self.backward(loss)
        self.step()
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
    def predict_logits(self, split: str = "val", model: nn.Module | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels over a split (TTA: average with the flipped image). The validation
        split's are kept until a weight or buffer changes: the end-of-run confusion matrix and
        top losses reuse the last epoch's evaluation instead of a second pass (6 s of a
        Fashion-MNIST run on 2 CPU cores)."""
        model = model or self.eval_model
        if split == "val":
            key = _weights_key(model)
            if self._val_cache is not None and self._val_cache[0] == key:
                model.eval()  # as after a fresh pass
                return self._val_cache[1], self._val_cache[2]
            logits, labels = self._predict(split, model)
            self._val_cache = (key, logits, labels)
            return logits, labels
        return self._predict(split, model)

    def _predict(self, split: str, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        batches = self.val_batches if split == "val" else Batches(
            self.data, split, self.eval_batch_size, self.device, False)
        outs, ys = [], []
        for xb, yb in batches:
            x = self.inputs(xb)
            with self.autocast():
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

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser, schedule, scaler, EMA and every RNG the run draws from."""
        return {
            "channels_last": self.channels_last,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "generator": self.gen.get_state(),
                "host": _host_state(self.aug.host_rng.getstate()),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.gen.set_state(rng["generator"])
        version, internal, gauss = rng["host"]
        self.aug.host_rng.setstate((version, tuple(internal), gauss))


def _weights_key(model: nn.Module) -> tuple:
    """Changes whenever the model's weights or buffers change: every in-place update (an
    optimiser step, load_state_dict, BatchNorm's running statistics) bumps a tensor's version
    counter, and a replaced tensor has a new identity."""
    tensors = [*model.parameters(), *model.buffers()]
    return (id(model), *((id(t), t._version) for t in tensors))


def _host_state(state: tuple) -> list:
    """random.Random's state as lists (what torch.load(weights_only=True) accepts)."""
    version, internal, gauss = state
    return [version, list(internal), gauss]
