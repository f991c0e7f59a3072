"""Helpers shared by the benchmarks: interleaved repeats, medians, a quiet temp MLflow store."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each fn `repeats` times, alternating (a b a b ...) so drift hits both alike.
    Each fn returns the figure to compare (seconds or images/sec)."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        order = list(fns) if i % 2 == 0 else list(reversed(fns))
        for name in order:
            out[name].append(fns[name]())
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


@contextmanager
def temp_store() -> Iterator[str]:
    """MLFLOW_TRACKING_URI pointing at a fresh SQLite file for the duration."""
    old = os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/bench.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        try:
            yield uri
        finally:
            if old is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = old


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
