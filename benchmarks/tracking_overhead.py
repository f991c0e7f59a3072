"""3. Tracking overhead: wall time of the default `digits` training with MLflow logging vs with
tracking disabled (store created beforehand: a first-ever run also pays MLflow's one-off
database set-up, reported separately)."""

from __future__ import annotations

from benchmarks.common import interleaved, median, temp_store, timed
from cnnexp import runner
from cnnexp.data import build_data
from cnnexp.recipe import load_recipe


def run(device: str = "cpu", repeats: int = 3) -> dict:
    recipe = load_recipe("digits")
    data = build_data(recipe)
    with temp_store():
        first = timed(lambda: runner.train(recipe, device=device, data=data, track=True))
        res = interleaved({
            "tracked": lambda: timed(lambda: runner.train(recipe, device=device, data=data)),
            "untracked": lambda: timed(lambda: runner.train(recipe, device=device, data=data,
                                                            track=False)),
        }, repeats)
    t, u = median(res["tracked"]), median(res["untracked"])
    return {"name": "tracking_overhead", "device": device, "tracked_seconds": round(t, 3),
            "untracked_seconds": round(u, 3), "extra_percent": round(100 * (t / u - 1), 2),
            "first_run_with_store_setup_seconds": round(first, 3),
            "target": "<= 2%", "met": t / u - 1 <= 0.02, "runs": res}
