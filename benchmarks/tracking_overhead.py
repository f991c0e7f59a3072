"""3. Tracking overhead: wall time of the default `digits` training with MLflow logging vs with
tracking disabled (store created beforehand: a first-ever run also pays the one-off
database set-up, reported separately, with a new store's set-up from cnnexp's cached template
vs MLflow's own migration side by side). Figure: the median over interleaved repeats of
100 x (tracked / untracked - 1), per run of the default digits recipe; target <= 2%."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from benchmarks.common import (
    interleaved,
    median,
    paired_ratios,
    repeats_for,
    summarize,
    temp_store,
    timed,
)
from cnnexp import train as runner
from cnnexp.data import build_data
from cnnexp.recipe import load_recipe

# the end-of-run figure rendering, where the train module still does it itself
ARTIFACT_STEPS = ("log_diagnosis", "log_classification")


@contextmanager
def timed_artifacts() -> Iterator[dict[str, float]]:
    """Instrument the end-of-run figure rendering (diagnosis curves, confusion matrix, top-loss
    grid) so the report can say how much of the overhead is artifacts, not logging; the
    module is restored afterwards."""
    spent = {"seconds": 0.0}
    originals = {n: getattr(runner, n) for n in ARTIFACT_STEPS if hasattr(runner, n)}

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["seconds"] += time.perf_counter() - t0
        return wrapped

    for name, fn in originals.items():
        setattr(runner, name, wrap(fn))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(runner, name, fn)


def new_store_seconds(template_on: bool) -> float:
    """Seconds to open a brand-new SQLite store, from the cached template or migrated by
    MLflow (the one-off cost of a user's first command in a new folder)."""
    import os
    import tempfile

    from cnnexp.tracking import connect, template

    before = os.environ.get(template.TEMPLATE_ENV)
    os.environ[template.TEMPLATE_ENV] = "on" if template_on else "off"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return timed(lambda: connect.open_client(f"sqlite:///{tmp}/mlflow.db"))
    finally:
        if before is None:
            os.environ.pop(template.TEMPLATE_ENV)
        else:
            os.environ[template.TEMPLATE_ENV] = before


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False) -> dict:
    repeats = repeats_for(repeats, quick)
    recipe = load_recipe("digits", ["train.epochs=2"] if quick else [])
    data = build_data(recipe)
    dev = torch.device(device)
    with temp_store(), timed_artifacts() as spent:
        first = timed(lambda: runner.train(recipe, device=dev, data=data, track=True))
        res = interleaved({
            "tracked": lambda: timed(lambda: runner.train(recipe, device=dev, data=data)),
            "untracked": lambda: timed(lambda: runner.train(recipe, device=dev, data=data,
                                                            track=False)),
        }, repeats)
    new_store_seconds(True)  # the template exists from here on (as after a user's first store)
    stores = interleaved({"template": lambda: new_store_seconds(True),
                          "migrated": lambda: new_store_seconds(False)}, repeats)
    ratios = paired_ratios(res["tracked"], res["untracked"])
    extra = [100 * (r - 1) for r in ratios]
    artifacts = spent["seconds"] / (repeats + 1)
    u = median(res["untracked"])
    return summarize("tracking_overhead", "extra_percent", extra, "<= 2%", digits=2,
                     label="% extra wall time with MLflow (default digits run)", device=device,
                     sides={"tracked_seconds": res["tracked"],
                            "untracked_seconds": res["untracked"]},
                     effect=abs(median(ratios) - 1),
                     first_run_with_store_setup_seconds=round(first, 3),
                     new_store_seconds_template=round(median(stores["template"]), 3),
                     new_store_seconds_mlflow_migration=round(median(stores["migrated"]), 3),
                     artifact_rendering_seconds_per_run=round(artifacts, 3),
                     extra_percent_without_artifacts=round(
                         100 * ((median(res["tracked"]) - artifacts) / u - 1), 2))
