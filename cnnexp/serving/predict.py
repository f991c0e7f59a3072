"""`cnnexp predict MODEL IMAGES...`: class probabilities for image files with a logged model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnexp.errors import BadInput
from cnnexp.serving.images import Skipped, batches, expand
from cnnexp.serving.mlflow_model import load_local, local_model


@dataclass
class Prediction:
    file: str
    top: str
    probability: float
    topk: list[tuple[str, float]]
    probs: list[float] = field(repr=False, default_factory=list)


@dataclass
class Predictions:
    model: str
    classes: list[str]
    rows: list[Prediction]
    skipped: list[Skipped]
    info: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "classes": self.classes, "images": len(self.rows),
                "predictions": [{"file": r.file, "class": r.top, "probability": r.probability,
                                 "top": [{"class": c, "probability": p} for c, p in r.topk]}
                                for r in self.rows],
                "skipped": [{"file": s.path, "reason": s.reason} for s in self.skipped],
                "weights": self.info.get("weights"), "run_id": self.info.get("run_id")}


def predict(model_ref: str, paths: Sequence[str], *, device: torch.device, k: int = 3,
            batch: int = 256, progress: Callable[[int, int], None] = lambda done, total: None
            ) -> Predictions:
    """Predict every readable image; BadInput when none could be read."""
    folder = local_model(model_ref)
    module, info = load_local(folder, device)
    files, skipped = expand(paths)
    if not files and not skipped:
        raise BadInput("no images given: name image files or folders of them")
    classes = info["classes"]
    k = max(1, min(k, len(classes)))
    rows: list[Prediction] = []
    done = 0
    with torch.no_grad():
        for good, x, bad in batches(files, info["image_size"], info["channels"], batch):
            skipped += bad
            done += len(good) + len(bad)
            if len(good):
                probs = module(torch.from_numpy(x).to(device)).float().cpu()
                values, index = probs.topk(k, dim=1)
                for f, p, v, i in zip(good, probs, values, index, strict=True):
                    top = [(classes[int(j)], float(q)) for q, j in zip(v, i, strict=True)]
                    rows.append(Prediction(str(f), top[0][0], top[0][1], top, p.tolist()))
            progress(done, len(files))
    if not rows:
        first = skipped[0]
        raise BadInput(f"no image could be read: {first.path}: {first.reason}"
                       + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
    return Predictions(model_ref, classes, rows, skipped, info)


def write_csv(result: Predictions, path: str) -> None:
    """file, class, probability, then one column per class."""
    import csv
    from pathlib import Path

    from cnnexp.files import replaced

    target = Path(path).expanduser()
    with replaced(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class", "probability", *result.classes])
        for r in result.rows:
            w.writerow([r.file, r.top, f"{r.probability:.6f}", *(f"{p:.6f}" for p in r.probs)])
