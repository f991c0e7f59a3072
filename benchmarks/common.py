"""Helpers shared by the benchmarks: interleaved repeats, robust statistics (median, min-max,
interquartile range) with warnings when the noise is as large as the effect, a load monitor
that says when the machine was busy, and a quiet temporary MLflow store.

A benchmark returns `summarize(...)`: its figure's median over the repeats, the spread of the
figure and of each side, the target and whether the median meets it, and `warnings`."""

from __future__ import annotations

import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DEFAULT_REPEATS = 5  # fewer and one slow repeat moves the median
QUICK_REPEATS = 2  # --quick: a smoke run of the plumbing, not a measurement
# Another process is "busy" when it used this many cores on average during a benchmark
OTHER_BUSY_CORES = 0.5
OTHER_SOME_CORES = 0.2


# --- repeats --------------------------------------------------------------------------------
def order(names: Sequence[str], i: int) -> list[str]:
    """a b, then b a: alternating the order spreads drift (thermal, cache, other load) evenly."""
    return list(names) if i % 2 == 0 else list(reversed(names))


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each fn `repeats` times, alternating (a b b a a b ...) so drift hits both alike.
    Each fn returns the figure to compare (seconds or images/sec)."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for name in order(list(fns), i):
            out[name].append(fns[name]())
    return out


def repeats_for(repeats: int | None, quick: bool, default: int = DEFAULT_REPEATS) -> int:
    return repeats if repeats else QUICK_REPEATS if quick else default


# --- statistics -----------------------------------------------------------------------------
def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def quantile(xs: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default); infinities allowed
    (a search that never reached its target counts as infinitely expensive)."""
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    if s[lo] == s[hi]:
        return s[lo]
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def spread(xs: Sequence[float]) -> dict[str, float]:
    """Median, min-max and quartiles; rel_iqr = IQR / |median| (robust to one bad repeat)."""
    xs = [float(x) for x in xs]
    if not xs:
        return {"n": 0}
    med, q1, q3 = median(xs), quantile(xs, 0.25), quantile(xs, 0.75)
    finite = math.isfinite(q3 - q1) and math.isfinite(med) and med != 0
    return {"n": len(xs), "median": med, "min": min(xs), "max": max(xs), "q1": q1, "q3": q3,
            "rel_iqr": (q3 - q1) / abs(med) if finite else math.nan,
            "rel_range": (max(xs) - min(xs)) / abs(med) if finite else math.nan}


def paired_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """a_i / b_i per repeat: neighbours in the interleaved order share the machine's state."""
    return [a / b for a, b in zip(num, den, strict=True)]


_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*(%|s|x)?\s*$")


def parse_target(text: str) -> tuple[str, float]:
    """'<= 2%' -> ('<=', 2.0): the threshold in the figure's own unit."""
    m = _TARGET.match(text)
    if not m:
        raise ValueError(f"target {text!r}: expected e.g. '>= 0.95', '<= 2%', '< 0.5 s'")
    return m.group(1), float(m.group(2))


def meets(value: float, target: str) -> bool:
    op, thr = parse_target(target)
    return {"<=": value <= thr, ">=": value >= thr, "<": value < thr, ">": value > thr}[op]


def noise_warnings(figure: dict[str, float], target: str, sides: dict[str, dict[str, float]],
                   effect: float | None, min_repeats: int = DEFAULT_REPEATS) -> list[str]:
    """Say when the spread makes the figure or its verdict unreliable."""
    out = []
    if figure.get("n", 0) < min_repeats:
        out.append(f"only {figure.get('n', 0)} repeat(s): the spread is not a measurement "
                   f"(run {min_repeats} or more)")
    if effect is not None and math.isfinite(effect):
        for side, st in sides.items():
            rel = st.get("rel_iqr", math.nan)
            if st.get("n", 0) >= 2 and math.isfinite(rel) and rel > effect:
                out.append(f"{side} varies by {rel:.1%} (IQR/median) across repeats, more than "
                           f"the effect measured ({effect:.1%})")
    _, thr = parse_target(target)
    if figure.get("n", 0) >= 2 and figure["q1"] < thr < figure["q3"]:
        out.append(f"the target ({target.strip()}) lies inside the figure's interquartile "
                   f"range [{_fmt(figure['q1'])}, {_fmt(figure['q3'])}]: met/not met is not "
                   "settled")
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def _rounded(st: dict[str, float], digits: int) -> dict[str, float]:
    return {k: v if k == "n" or not isinstance(v, float) or not math.isfinite(v)
            else round(v, digits) for k, v in st.items()}


def summarize(name: str, figure: str, samples: Sequence[float], target: str, *, label: str,
              sides: dict[str, Sequence[float]] | None = None, effect: float | None = None,
              digits: int = 3, **extra: Any) -> dict[str, Any]:
    """A benchmark's result: `figure` (its per-repeat `samples`) summarised, checked against
    `target` by its median, with the spread of each side and the noise warnings. `effect` is
    the relative size of what is measured (|ratio - 1|): a side that varies more than that
    across repeats gets a warning."""
    fig = spread(samples)
    sides = sides or {}
    side_stats = {k: spread(v) for k, v in sides.items()}
    value = round(fig["median"], digits) if math.isfinite(fig["median"]) else fig["median"]
    return {"name": name, "figure": figure, "label": label, figure: value, "value": value,
            "spread": _rounded(fig, digits), "target": target, "met": meets(fig["median"], target),
            "sides": {k: _rounded(v, digits) for k, v in side_stats.items()},
            "runs": {**{k: list(v) for k, v in sides.items()}, figure: list(samples)},
            "warnings": noise_warnings(fig, target, side_stats, effect), **extra}


def skipped(name: str, reason: str, target: str) -> dict[str, Any]:
    return {"name": name, "skipped": reason, "target": target, "met": None, "warnings": []}


# --- the machine ----------------------------------------------------------------------------
def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


def _busy_jiffies() -> int | None:
    """CPU time all processes used, from /proc/stat (user+nice+system+irq+softirq+steal)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _own_cpu_seconds() -> float:
    t = os.times()  # this process and its reaped children (subprocesses, DataLoader workers)
    return t.user + t.system + t.children_user + t.children_system


class LoadMonitor:
    """The 1-minute load average before, every few seconds during, and after a benchmark, and
    the CPU time other processes used meanwhile (all CPU time from /proc/stat minus this
    process tree's). A load above the core count alone can be the benchmark's own threads;
    other processes' CPU time says whether something else shared the machine."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.cores = every, os.cpu_count() or 1
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.info: dict[str, Any] = {}

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            if (load := load_average()) is not None:
                self.samples.append(load)

    def __enter__(self) -> LoadMonitor:
        self.before = load_average()
        self.samples = [self.before] if self.before is not None else []
        self._t0, self._jiffies0, self._own0 = time.perf_counter(), _busy_jiffies(), \
            _own_cpu_seconds()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = load_average()
        if after is not None:
            self.samples.append(after)
        wall = max(time.perf_counter() - self._t0, 1e-9)
        own = (_own_cpu_seconds() - self._own0) / wall
        jiffies = _busy_jiffies()
        other = None
        if jiffies is not None and self._jiffies0 is not None:
            total = (jiffies - self._jiffies0) / os.sysconf("SC_CLK_TCK") / wall
            other = max(0.0, total - own)
        self.info = {"cpu_count": self.cores, "load_before": _r(self.before),
                     "load_after": _r(after), "load_max": _r(max(self.samples, default=None)),
                     "own_cpu_cores": round(own, 2),
                     "other_cpu_cores": None if other is None else round(other, 2)}

    def warnings(self) -> list[str]:
        return busy_warnings(self.info)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def busy_warnings(info: dict[str, Any]) -> list[str]:
    """'machine busy' when the load average went above the core count and it was not only this
    benchmark (others used some CPU), or when other processes used half a core or more."""
    cores, load, other = info.get("cpu_count") or 1, info.get("load_max"), \
        info.get("other_cpu_cores")
    over = load is not None and load > cores
    if (other is not None and other >= OTHER_BUSY_CORES) or \
            (over and (other is None or other >= OTHER_SOME_CORES)):
        parts = [f"1-min load average up to {load:.2f} on {cores} cores" if load is not None
                 else None, f"other processes used {other:.2f} cores on average"
                 if other is not None else None]
        return ["machine busy: " + ", ".join(p for p in parts if p)]
    return []


# --- helpers --------------------------------------------------------------------------------
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
