"""Hooks for the code that drives `fit` (CLI progress, MLflow, search pruning, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from cnnexp.data.bundle import DataBundle
    from cnnexp.engine.loop import Progress
    from cnnexp.engine.trainer import Trainer
    from cnnexp.schema import Recipe


@dataclass
class FitState:
    """What callbacks may read; setting `stop`/`stop_reason` ends training after this epoch.
    `trainer` and `progress` are what a checkpoint captures."""

    recipe: Recipe
    model: torch.nn.Module
    data: DataBundle
    device: torch.device
    epochs: int
    steps_per_epoch: int
    trainer: Trainer | None = None
    progress: Progress | None = None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    stop_reason: str = ""


class Callback:
    """Override what you need; every hook is optional. Exceptions propagate (e.g. a search
    trial pruned from `on_epoch_end`)."""

    def on_fit_start(self, state: FitState) -> None: ...

    def on_batch_end(self, state: FitState, batch: int) -> None: ...

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, state: FitState, result: Any) -> None: ...
