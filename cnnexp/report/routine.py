"""The routine's answer, read back from MLflow: which recipe the search started from, what it
tuned, which tested training run is the tuned recipe and which is the start recipe, and how
long each step took. A search run records both ends (`search.start.KEY` params, the best.yaml
artifact), so the final runs are found by their params, not by name (both carry the recipe's
name) nor by age (the start recipe is often re-trained after the tuned one)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnnexp.tracking import query
from cnnexp.tracking import tags as T

START = "search.start."
SPACE = "search.space."


@dataclass
class Change:
    key: str
    start: str
    tuned: str


@dataclass
class Routine:
    search: dict[str, Any] | None
    changes: list[Change] = field(default_factory=list)  # the searched keys, start -> tuned
    tuned: dict[str, Any] | None = None  # the newest tested run of best.yaml
    start: dict[str, Any] | None = None  # the newest tested run of the start recipe


def searched_keys(search: dict[str, Any]) -> list[str]:
    return [k[len(SPACE):] for k in search["params"] if k.startswith(SPACE)]


def best_values(search: dict[str, Any]) -> dict[str, Any]:
    """The searched keys' values in the search's best.yaml artifact ({} without one)."""
    text = query.artifact_text(search["run_id"], "best.yaml")
    if not text:
        return {}
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    out = {}
    for key in searched_keys(search):
        group, _, name = key.partition(".")
        section = recipe.get(group) if isinstance(recipe, dict) else None
        if isinstance(section, dict) and name in section:
            out[key] = section[name]
    return out


def start_values(search: dict[str, Any]) -> dict[str, str]:
    """The start recipe's values of the searched keys: logged on the search run; for a search
    logged before that, read from its confirming stage's runs of the recipe as written."""
    logged = {k[len(START):]: v for k, v in search["params"].items() if k.startswith(START)}
    if logged:
        return logged
    arms = query.runs_in(search["experiment_id"], f"tags.`{T.KIND}` = 'confirm' and "
                         f"tags.`{T.ARM}` = 'recipe'")
    stages = {r["run_id"] for r in query.child_runs(search["run_id"], search["experiment_id"])}
    mine = next((r for r in arms if r["parent_id"] in stages | {search["run_id"]}), None)
    return {k: mine["params"][k] for k in searched_keys(search) if k in mine["params"]} if mine else {}


def same(logged: str | None, value: Any) -> bool:
    """Does a logged param (always a string) hold this value? Numbers compare as numbers."""
    if logged is None:
        return False
    try:
        a, b = float(logged), float(value)
    except (TypeError, ValueError):
        return logged == str(value)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def matches(run: dict[str, Any], values: dict[str, Any]) -> bool:
    return bool(values) and all(same(run["params"].get(k), v) for k, v in values.items())


def shown(value: Any) -> str:
    if isinstance(value, float) or (isinstance(value, str) and _is_float(value)):
        number = float(value)
        return f"{number:.3g}" if number != int(number) or abs(number) < 1e-3 else f"{number:g}"
    return str(value)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "." in text or "e" in text.lower()


def tested(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training runs with a test figure, newest first."""
    return sorted((r for r in runs if T.kind_of(r["tags"]) == "train" and "test_acc" in r["metrics"]),
                  key=lambda r: -(r["start_time"] or 0))


def find(search: dict[str, Any] | None, runs: list[dict[str, Any]]) -> Routine:
    """The routine around `search` among `runs` (any top-level runs)."""
    if search is None:
        return Routine(None)
    best, start = best_values(search), start_values(search)
    changes = [Change(k, shown(start[k]) if k in start else "?", shown(best[k]))
               for k in searched_keys(search) if k in best and not same(start.get(k), best[k])]
    recipe = search["tags"].get(T.RECIPE)
    candidates = [r for r in tested(runs) if r["tags"].get(T.RECIPE) == recipe]
    tuned = next((r for r in candidates if matches(r, best)), None)
    begun = next((r for r in candidates if r is not tuned and matches(r, start)), None)
    return Routine(search, changes, tuned, begun)


def seconds(run: dict[str, Any] | None) -> float | None:
    """A finished run's wall time; None while it runs (or without times)."""
    if not run or not run.get("start_time") or not run.get("end_time"):
        return None
    return max(0.0, (run["end_time"] - run["start_time"]) / 1000)


def duration(secs: float | None) -> str:
    if secs is None:
        return "—"
    if secs < 90:
        return f"{secs:.0f} s"
    if secs < 5400:
        return f"{secs / 60:.1f} min"
    return f"{secs / 3600:.1f} h"


def gap(tuned: dict[str, Any], start: dict[str, Any]) -> str:
    """The tuned - start test difference with its combined standard error (independent test
    evaluations of two models on the same images: the SEs add in quadrature, a conservative
    figure since the images are shared)."""
    a, b = tuned["metrics"], start["metrics"]
    delta = a["test_acc"] - b["test_acc"]
    se = math.hypot(a.get("test_acc_se", math.nan), b.get("test_acc_se", math.nan))
    ratio = f", {abs(delta) / se:.1f} SE" if se > 0 and math.isfinite(se) else ""
    return f"{delta * 100:+.2f} pp (combined SE {se * 100:.2f} pp{ratio})"
