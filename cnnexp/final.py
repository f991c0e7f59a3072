"""The final evaluation: the held-out test split, read once, when the user asks (`--test`).

Which weights are tested is stated with the figure: the best epoch by validation accuracy
(what early stopping and best-epoch selection chose), or the last epoch when there was no
validation split (`--refit`: trained on train+val)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from cnnexp.data.bundle import DataBundle, HeldOut
from cnnexp.engine import FitResult
from cnnexp.noise import binomial_se


@dataclass
class TestResult:
    acc: float
    loss: float
    n: int
    weights: str  # which weights were evaluated, in words
    origin: str  # "official test set" or how it was held out
    logits: torch.Tensor = field(repr=False, default_factory=lambda: torch.empty(0))
    labels: torch.Tensor = field(repr=False, default_factory=lambda: torch.empty(0))

    @property
    def se(self) -> float:
        return binomial_se(self.acc, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {"test_acc": self.acc, "test_loss": self.loss, "test_acc_se": self.se,
                "test_images": self.n, "weights": self.weights, "test_split": self.origin}

    def line(self) -> str:
        return (f"test_acc {self.acc:.4f} ± {self.se:.4f} (n={self.n}, {self.origin}; "
                f"{self.weights})")


@torch.no_grad()
def evaluate_test(result: FitResult, data: DataBundle) -> TestResult:
    """Accuracy and loss of the chosen weights on the test split."""
    trainer = result.trainer
    held: HeldOut = data.test()  # BadInput when the data set has none
    model = trainer.eval_model
    if result.best_state is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(result.best_state)
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        weights = (f"best epoch {result.best_epoch} of {len(result.history)} by val_acc "
                   f"({best.get('val_acc', float('nan')):.4f})")
    else:
        weights = f"last epoch {len(result.history)} (no validation split)"
    logits, labels = trainer.predict_logits("test", model=model)
    logits, labels = logits.float().cpu(), labels.cpu()
    return TestResult(acc=float((logits.argmax(1) == labels).float().mean()),
                      loss=float(F.cross_entropy(logits, labels)), n=len(held),
                      weights=weights, origin=held.origin, logits=logits, labels=labels)


def merged_train_val(data: DataBundle) -> DataBundle:
    """The bundle with validation folded into training and no validation split: for a final
    run on all the labelled data (`--refit`), after every decision has been made."""
    import dataclasses

    if data.in_memory:
        assert data.train_x is not None and data.val_x is not None
        assert data.train_y is not None and data.val_y is not None
        return dataclasses.replace(
            data, train_x=torch.cat([data.train_x, data.val_x]),
            train_y=torch.cat([data.train_y, data.val_y]),
            val_x=data.val_x[:0], val_y=data.val_y[:0])
    from torch.utils.data import ConcatDataset, Subset

    assert data.train_set is not None and data.val_set is not None
    return dataclasses.replace(data, train_set=ConcatDataset([data.train_set, data.val_set]),
                               val_set=Subset(data.val_set, []))
