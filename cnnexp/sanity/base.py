"""What every check gets (a SanityContext) and returns (a CheckResult).

Checks build their models and trainers through the engine (`Trainer`), from variants of the
recipe (regularisation off, augmentation off, ...), so they exercise the code that `fit` runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnexp.data.bundle import DataBundle
from cnnexp.recipe import set_path, validate
from cnnexp.schema import Recipe

PASS, WARN, FAIL = "pass", "warn", "fail"

# the recipe fields that "regularisation off" resets, and their off values
REG_OFF = {"reg.dropout": 0.0, "reg.label_smoothing": 0.0, "reg.l1": 0.0, "reg.ema": None,
           "reg.patience": None, "opt.weight_decay": 0.0}
AUG_OFF = {f"aug.{k}": v for k, v in
           {"flip": False, "translate": 0, "scale": None, "rotation": 0.0, "color_jitter": 0.0,
            "cutout": 0, "mixup": 0.0, "cutmix": 0.0, "tta": False}.items()}


@dataclass
class CheckResult:
    """A verdict with the measured figure, the expected one and, unless it passed, a hint.
    `fields` go into --json as they are; `metrics` are logged to MLflow; `plot_data` is what
    the plots module draws from (never printed)."""

    name: str
    status: str
    measured: str
    expected: str
    hint: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    plot_data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "measured": self.measured,
                "expected": self.expected, "hint": self.hint,
                "seconds": round(self.seconds, 3), **self.fields}


@dataclass
class SanityContext:
    """The recipe, its data (already on the device) and how to make a fresh model.

    `model_factory` lets tests and notebooks check a hand-built module; by default every check
    gets the recipe's own freshly initialised model (same seed, so the same weights)."""

    recipe: Recipe
    data: DataBundle
    device: torch.device
    model_factory: Callable[[], nn.Module] | None = None
    tiny: int = 20
    overfit_steps: int = 300
    lr_range: dict[str, Any] = field(default_factory=dict)  # range_test keyword arguments

    def variant(self, changes: dict[str, Any]) -> Recipe:
        """The recipe with dotted fields replaced (validated), compile off: a check runs a
        handful of steps, never worth a compilation."""
        tree = self.recipe.model_dump(mode="python")
        for key, value in {**changes, "train.compile": False}.items():
            set_path(tree, key, value)
        return validate(tree)

    def trainer(self, changes: dict[str, Any] | None = None, data: DataBundle | None = None):
        from cnnexp.engine.trainer import Trainer

        model = self.model_factory() if self.model_factory else None
        return Trainer(self.variant(changes or {}), data or self.data, self.device, model)


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not finite(x):
        return "non-finite" if x is not None else "-"
    return f"{x:.{digits}g}"


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Estimate BatchNorm running statistics from `batches` without touching any weight.

    At initialisation they are (0, 1), so an eval-mode forward would measure an un-normalised
    network that training never sees (a ResNet's residuals then grow layer by layer)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    for x in batches:
        model(x)
    for m, momentum in saved:
        m.momentum = momentum
