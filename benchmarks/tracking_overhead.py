"""3. Tracking overhead: wall time of the default `digits` training with MLflow logging vs with
tracking disabled (store created beforehand: a first-ever run also pays MLflow's one-off
database set-up, reported separately)."""

from __future__ import annotations

import time

import torch

from benchmarks.common import interleaved, median, temp_store, timed
from cnnexp import train as runner
from cnnexp.data import build_data
from cnnexp.recipe import load_recipe


def _timed_artifacts() -> dict[str, float]:
    """Instrument the end-of-run figure rendering (diagnosis curves, confusion matrix, top-loss
    grid) so the report can say how much of the overhead is artifacts, not logging."""
    spent = {"seconds": 0.0}
    for name in ("log_diagnosis", "log_classification"):
        original = getattr(runner, name)

        def wrapped(*a, _f=original, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                spent["seconds"] += time.perf_counter() - t0

        setattr(runner, name, wrapped)
    return spent


def run(device: str = "cpu", repeats: int = 3) -> dict:
    recipe = load_recipe("digits")
    data = build_data(recipe)
    spent = _timed_artifacts()
    with temp_store():
        first = timed(lambda: runner.train(recipe, device=torch.device(device), data=data, track=True))
        res = interleaved({
            "tracked": lambda: timed(lambda: runner.train(recipe, device=torch.device(device), data=data)),
            "untracked": lambda: timed(lambda: runner.train(recipe, device=torch.device(device), data=data,
                                                            track=False)),
        }, repeats)
    t, u = median(res["tracked"]), median(res["untracked"])
    artifacts = spent["seconds"] / (repeats + 1)
    return {"name": "tracking_overhead", "device": device, "tracked_seconds": round(t, 3),
            "untracked_seconds": round(u, 3), "extra_percent": round(100 * (t / u - 1), 2),
            "first_run_with_store_setup_seconds": round(first, 3),
            "artifact_rendering_seconds_per_run": round(artifacts, 3),
            "extra_percent_without_artifacts": round(100 * ((t - artifacts) / u - 1), 2),
            "target": "<= 2%", "met": t / u - 1 <= 0.02, "runs": res}
