"""Progress for a whole ablation: one bar over all epochs of all runs, one over the current
run's epochs. A no-op unless enabled (TTY stderr, no --json, no -q)."""

from __future__ import annotations

from typing import Any

from cnnexp.console import progress_bar
from cnnexp.engine.callbacks import Callback, FitState


class AblationProgress:
    def __init__(self, enabled: bool, total_epochs: int) -> None:
        self.enabled, self.total = enabled, total_epochs
        self.progress: Any = None

    def __enter__(self) -> AblationProgress:
        if self.enabled:
            self.progress = progress_bar(remaining=True)
            self.progress.__enter__()
            self.overall = self.progress.add_task("ablation epochs", total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def skip(self, epochs: int) -> None:
        """A reused run (--resume): its epochs count as done."""
        if self.progress is not None:
            self.progress.update(self.overall, advance=epochs)

    def callbacks(self, label: str) -> list[Callback]:
        if self.progress is None:
            return []
        return [_RunBar(self, label)]


class _RunBar(Callback):
    def __init__(self, owner: AblationProgress, label: str) -> None:
        self.owner, self.label = owner, label

    def on_fit_start(self, state: FitState) -> None:
        p = self.owner.progress
        self.task = p.add_task(f"  {self.label}", total=state.epochs, info="")

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        p = self.owner.progress
        p.update(self.task, advance=1, info=f"val_acc={metrics['val_acc']:.4f}")
        p.update(self.owner.overall, advance=1)

    def on_fit_end(self, state: FitState, result: Any) -> None:
        p = self.owner.progress
        left = state.epochs - len(state.history)  # stopped early: count the budget as spent
        if left > 0:
            p.update(self.owner.overall, advance=left)
        p.remove_task(self.task)
