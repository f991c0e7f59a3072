"""Put the diagnosis and the classification data on a tracked run (numbers only; the figures
are drawn from them by cnnexp.diagnose.figures, off the training path).

Artifacts (paths inside the run):
  diagnosis/diagnosis.json (+ curves.png, drawn later)        every `cnnexp train` run
  classification/confusion_matrix.csv (+ .png, drawn later)
  classification/top_losses.json (+ .png, drawn later)
"""

from __future__ import annotations

import json
from typing import Any

import torch

from cnnexp.diagnose.rules import Diagnosis


def summary_fields(d: Diagnosis) -> dict[str, str]:
    """What `cnnexp train` adds to its summary (table row and JSON keys)."""
    return {"diagnosis": d.diagnosis, "diagnosis_note": d.summary}


def log_diagnosis(r: Any, d: Diagnosis) -> None:
    """The diagnosis as JSON (the tag is set by the run's outcome logger; the curves figure is
    drawn off the training path by cnnexp.diagnose.figures)."""
    r.log_text(json.dumps(d.to_dict(), indent=2), "diagnosis/diagnosis.json")


@torch.no_grad()
def log_classification(r: Any, result: Any, k: int = 16) -> dict[str, Any]:
    """Confusion counts (CSV) and the top-loss examples (JSON) from the trained model's
    validation predictions; their figures are drawn off the training path
    (cnnexp.diagnose.figures). Skipped (empty dict) for a diverged run or one without
    validation data."""
    from cnnexp.diagnose.plots import log_confusion, top_losses

    trainer = result.trainer
    if result.status == "diverged" or trainer.data.n_val == 0:
        return {}
    logits, labels = trainer.predict_logits()
    logits, labels = logits.float().cpu(), labels.cpu()
    classes = list(trainer.data.classes)
    cm = log_confusion(r, logits, labels, classes, "classification")
    rows = top_losses(logits, labels, k)
    named = [{**row, "true_name": classes[row["true"]], "pred_name": classes[row["pred"]]}
             for row in rows]
    r.log_text(json.dumps(named, indent=2), "classification/top_losses.json")
    return {"confusion": cm.tolist() if cm is not None else None, "top_losses": named}
