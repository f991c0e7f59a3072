"""A training run's review figures, drawn from what the run logged — off the training path.

A tracked `cnnexp train` logs numbers only (per-epoch metrics, diagnosis.json, the confusion
counts as CSV, the top-loss examples as JSON): milliseconds. Drawing the three figures from
them (learning curves, confusion matrix, top-loss grid) costs most of a second, which a
4-second run (or hundreds of search trials) should not wait for. They are drawn here instead:
by `cnnexp report`/`cnnexp diagnose` when they are missing, and by `cnnexp train` in a
background process after it has printed its result (`python -m cnnexp.diagnose.figures RUN`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import torch

from cnnexp.diagnose.rules import CURVE_KEYS, context_of, diagnose
from cnnexp.tracking import query, store
from cnnexp.tracking import tags as T

CURVES = "diagnosis/curves.png"
CONFUSION = "classification/confusion_matrix.png"
TOP_LOSSES = "classification/top_losses.png"
TEST_CONFUSION = "test/confusion_matrix.png"


def missing(run_id: str) -> list[str]:
    """The figures this run could have but has not (yet)."""
    have = {p for folder in ("diagnosis", "classification", "test")
            for p in query.artifact_paths(run_id, folder)}
    want = [CURVES]
    for figure, source in ((CONFUSION, "classification/confusion_matrix.csv"),
                           (TOP_LOSSES, "classification/top_losses.json"),
                           (TEST_CONFUSION, "test/confusion_matrix.csv")):
        if source in have:
            want.append(figure)
    return [p for p in want if p not in have]


def render(run_id: str, only: list[str] | None = None) -> list[str]:
    """Draw and log the run's missing figures; returns the artifact paths written."""
    run = store.attach(run_id)
    rec = query.find_run(run_id)
    if run is None or rec is None:
        return []
    todo = only if only is not None else missing(run_id)
    written = []
    for path in todo:
        fig = _DRAW[path](rec)
        if fig is not None:
            run.log_figure(fig, path)
            written.append(path)
    return written


def _curves(rec: dict[str, Any]) -> Any:
    from cnnexp.diagnose.plots import curves_figure

    hist = [h for h in query.metric_history(rec["run_id"], (*CURVE_KEYS, "lr"))
            if any(k in h for k in CURVE_KEYS)]
    if not hist:
        return None
    d = diagnose(hist, status=rec["tags"].get(T.STATUS, "completed"),
                 **context_of(rec))
    title = f"{rec['tags'].get(T.RECIPE, rec['name'])}: {d.diagnosis}"
    best = int(rec["metrics"]["best_epoch"]) if "best_epoch" in rec["metrics"] else None
    return curves_figure(hist, f"{title}\n{textwrap.shorten(d.summary, 120)}", best)


def _confusion(rec: dict[str, Any], split: str = "classification") -> Any:
    from cnnexp.diagnose.plots import confusion_figure

    text = query.artifact_text(rec["run_id"], f"{split}/confusion_matrix.csv")
    if not text:
        return None
    rows = list(csv.reader(io.StringIO(text)))
    classes = rows[0][1:]
    cm = torch.tensor([[int(v) for v in row[1:]] for row in rows[1:]])
    title = ""
    if split == "test" and "test_acc" in rec["metrics"]:
        title = (f"test split: test_acc {rec['metrics']['test_acc']:.4f} ± "
                 f"{rec['metrics'].get('test_acc_se', float('nan')):.4f} "
                 f"({rec['tags'].get(T.TESTED_WEIGHTS, '')})")
    return confusion_figure(cm, classes, title)


def _top_losses(rec: dict[str, Any]) -> Any:
    """The grid needs the images: the validation split is rebuilt from the run's recipe."""
    from cnnexp.data import build_data
    from cnnexp.diagnose.plots import top_loss_figure
    from cnnexp.recipe import load_recipe

    text = query.artifact_text(rec["run_id"], "classification/top_losses.json")
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = store.download(rec["run_id"], "recipe.yaml", Path(tmp))
        if not text or recipe_path is None:
            return None
        recipe = load_recipe(str(recipe_path))
    return top_loss_figure(json.loads(text), build_data(recipe))


_DRAW = {CURVES: _curves, CONFUSION: _confusion, TOP_LOSSES: _top_losses,
         TEST_CONFUSION: lambda rec: _confusion(rec, "test")}


MODE_ENV = "CNNEXP_FIGURES"  # "background" (default) or "on-demand" (only report/diagnose draw)


def spawn(run_id: str) -> Any:
    """Draw the figures in a detached background process (the user does not wait for it);
    its output goes nowhere, and a failure only means the figures appear on demand later.
    Returns the process (None when CNNEXP_FIGURES=on-demand)."""
    import os
    import subprocess

    if os.environ.get(MODE_ENV, "background") == "on-demand":
        return None
    return subprocess.Popen([sys.executable, "-m", "cnnexp.diagnose.figures", run_id],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ))


def main(argv: list[str]) -> int:
    from cnnexp.console import quiet_libraries

    quiet_libraries()
    for run_id in argv:
        render(run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
