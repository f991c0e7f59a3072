"""Optimiser and learning-rate schedule from the recipe's `opt` section."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnexp.schema import OptCfg


def build_optimizer(cfg: OptCfg, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # no weight decay on norm scales/shifts and biases (1-D tensors)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adagrad(groups, lr=cfg.lr)


class Schedule:
    """Per-step LR schedule (warmup then none/step/cosine, or one-cycle) plus the per-epoch
    reduce-on-plateau variant. `step()` after every optimiser step, `epoch_end(val_loss)`
    after every evaluation."""

    def __init__(self, cfg: OptCfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                 epochs: int) -> None:
        self.cfg, self.opt = cfg, optimizer
        total = max(1, steps_per_epoch * epochs)
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        self.plateau = None
        if cfg.schedule == "onecycle":
            self.sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=total,
                cycle_momentum=cfg.optimizer in ("sgd", "rmsprop") and cfg.momentum > 0)
            return
        if cfg.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=cfg.gamma, patience=max(1, cfg.step_epochs // 10))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if cfg.schedule == "cosine":
                t = (step - warmup) / max(1, total - warmup)
                return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
            if cfg.schedule == "step":
                return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_epochs)
            return 1.0

        self.sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def step(self) -> None:
        self.sched.step()

    def epoch_end(self, val_loss: float) -> None:
        if self.plateau is not None and math.isfinite(val_loss):
            self.plateau.step(val_loss)

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"sched": self.sched.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.sched.load_state_dict(state["sched"])
        if self.plateau and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
