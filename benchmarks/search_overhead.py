"""4. Search overhead: seconds of non-training time per trial in a `cnnexp search` on digits.

Trials run in a long-lived worker that loads the data once. Two searches (N1 and N2 one-epoch
trials, tracked in a temporary MLflow store, journal storage in a temp dir); for each, the
time outside `fit` is wall time minus the summed fit times. The per-trial fixed cost is the
slope between the two (one-off costs such as study creation and the final plots cancel out);
the average including one-off costs is reported too."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import temp_store
from cnnexp.engine import Callback


class FitTimer(Callback):
    def __init__(self) -> None:
        self.seconds = 0.0
        self._t0 = 0.0

    def on_fit_start(self, state) -> None:
        self._t0 = time.perf_counter()

    def on_fit_end(self, state, result) -> None:
        self.seconds += time.perf_counter() - self._t0


def _search(trials: int, device: str) -> tuple[float, float]:
    from cnnexp.search.run import SearchOptions, run_search

    timer = FitTimer()
    with tempfile.TemporaryDirectory() as tmp, temp_store():
        opts = SearchOptions(stages="coarse", trials=f"coarse={trials}",
                             storage=f"{tmp}/bench.journal", study=f"bench{trials}",
                             devices=device, out=str(Path(tmp) / "out"))
        t0 = time.perf_counter()
        run_search(None, ["search.stages.coarse.epochs=1"], opts, lines=False,
                   callbacks=[timer])
        wall = time.perf_counter() - t0
    return wall, timer.seconds


def run(device: str = "cpu", small: int = 4, large: int = 12) -> dict:
    _search(2, device)  # warm-up: first-use imports (optuna, plotting) are not per trial
    w1, f1 = _search(small, device)
    w2, f2 = _search(large, device)
    slope = ((w2 - f2) - (w1 - f1)) / (large - small)
    return {"name": "search_overhead", "device": device,
            "seconds_per_trial_overhead": round(slope, 3),
            "average_overhead_incl_one_off": round((w2 - f2) / large, 3),
            "trials": [small, large], "wall_seconds": [round(w1, 2), round(w2, 2)],
            "fit_seconds": [round(f1, 2), round(f2, 2)],
            "target": "< 0.5 s", "met": slope < 0.5}
