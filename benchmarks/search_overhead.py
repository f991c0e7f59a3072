"""4. Search overhead: seconds of non-training time per trial in a `cnnexp search` on digits.

Trials run in a long-lived worker that loads the data once. Two searches (N1 and N2 one-epoch
trials, tracked in a temporary MLflow store, journal storage in a temp dir); for each, the
time outside `fit` is wall time minus the summed fit times. The per-trial fixed cost is the
slope between the two (one-off costs such as study creation and the final plots cancel out);
the average including one-off costs is reported too. Each repeat runs both searches
(alternating which goes first); the figure is the median slope over the repeats."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import median, order, repeats_for, summarize, temp_store
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


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False) -> dict:
    repeats = repeats_for(repeats, quick)
    small, large = (2, 5) if quick else (4, 12)
    _search(2, device)  # warm-up: first-use imports (optuna, plotting) are not per trial
    runs: dict[int, list[tuple[float, float]]] = {small: [], large: []}
    for i in range(repeats):
        for n in order([small, large], i):
            runs[n].append(_search(n, device))
    slopes = [((w2 - f2) - (w1 - f1)) / (large - small)
              for (w1, f1), (w2, f2) in zip(runs[small], runs[large], strict=True)]
    outside = {f"outside_fit_seconds_{n}_trials": [w - f for w, f in runs[n]] for n in runs}
    return summarize("search_overhead", "seconds_per_trial_overhead", slopes, "< 0.5 s",
                     label="s of non-training time per trial", device=device, sides=outside,
                     average_overhead_incl_one_off=round(
                         median([(w - f) / large for w, f in runs[large]]), 3),
                     trials=[small, large],
                     wall_seconds=[round(median([w for w, _ in runs[n]]), 2) for n in runs],
                     fit_seconds=[round(median([f for _, f in runs[n]]), 2) for n in runs])
