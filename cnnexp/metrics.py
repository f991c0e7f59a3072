"""The per-epoch metrics a search or an ablation can rank by, and which way is better."""

from __future__ import annotations

MAXIMIZE, MINIMIZE = "maximize", "minimize"

DIRECTION = {"val_acc": MAXIMIZE, "best_val_acc": MAXIMIZE, "train_acc": MAXIMIZE,
             "val_loss": MINIMIZE, "train_loss": MINIMIZE}


def direction(metric: str) -> str:
    """'maximize' or 'minimize' (Optuna's words)."""
    return DIRECTION[metric]


def higher_is_better(metric: str) -> bool:
    return DIRECTION[metric] == MAXIMIZE
