"""Put the diagnosis and the classification artifacts on a tracked run.

Artifacts (paths inside the run):
  diagnosis/diagnosis.json, diagnosis/curves.png      every training run
  classification/confusion_matrix.png|.csv            final runs (cnnexp train)
  classification/top_losses.png|.json
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import torch

from cnnexp.diagnose.rules import Diagnosis


def summary_fields(d: Diagnosis) -> dict[str, str]:
    """What `cnnexp train` adds to its summary (table row and JSON keys)."""
    return {"diagnosis": d.diagnosis, "diagnosis_note": d.summary}


def log_diagnosis(r: Any, d: Diagnosis, history: list[dict[str, float]],
                  best_epoch: int | None = None, title: str = "") -> None:
    """JSON + the learning curves titled with the verdict (the tag is set by the run's
    outcome logger, cnnexp.tracking.record)."""
    from cnnexp.diagnose.plots import curves_figure

    r.log_text(json.dumps(d.to_dict(), indent=2), "diagnosis/diagnosis.json")
    head = f"{title}: {d.diagnosis}" if title else d.diagnosis
    fig = curves_figure(history, f"{head}\n{textwrap.shorten(d.summary, 120)}", best_epoch)
    r.log_figure(fig, "diagnosis/curves.png")


@torch.no_grad()
def log_classification(r: Any, result: Any, k: int = 16) -> dict[str, Any]:
    """Confusion matrix and top-loss grid from the trained model's validation predictions.

    Skipped (empty dict) for a diverged run or one without a trainer or validation data."""
    from cnnexp.diagnose.plots import (
        confusion_counts,
        confusion_csv,
        confusion_figure,
        top_loss_figure,
        top_losses,
    )

    trainer = result.trainer
    if result.status == "diverged" or trainer.data.n_val == 0:
        return {}
    logits, labels = trainer.predict_logits()
    logits, labels = logits.float().cpu(), labels.cpu()
    classes = list(trainer.data.classes)
    cm = confusion_counts(logits, labels, len(classes))
    r.log_figure(confusion_figure(cm, classes), "classification/confusion_matrix.png")
    r.log_text(confusion_csv(cm, classes), "classification/confusion_matrix.csv")
    rows = top_losses(logits, labels, k)
    r.log_figure(top_loss_figure(rows, trainer.data), "classification/top_losses.png")
    named = [{**row, "true_name": classes[row["true"]], "pred_name": classes[row["pred"]]}
             for row in rows]
    r.log_text(json.dumps(named, indent=2), "classification/top_losses.json")
    return {"confusion": cm.tolist(), "top_losses": named}
