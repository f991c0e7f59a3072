"""The search's result as one JSON object (what `--json` prints, search.json holds and the
benchmarks read), and its headline: the confirming stage's verdict, else what the search alone
can say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnexp.redact import redact_url
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan
from cnnexp.search.results import StageResult


def result_json(plan: Plan, results: list[StageResult], best: tuple | None, best_path: Path | None,
          csv_path: Path, seconds: float, confirmed: dict[str, Any] | None = None,
          skipped: str = "") -> dict[str, Any]:
    stages = []
    for r in results:
        s = r.summary()
        s["top"] = [{"trial": t.number, "name": t.user_attrs.get(A.NAME, ""),
                     "value": t.value, "params": dict(t.params),
                     "diagnosis": t.user_attrs.get(A.DIAGNOSIS)} for t in r.top[:5]]
        stages.append(s)
    best_obj = None
    if best:
        r, t = best
        best_obj = {"stage": r.plan.name, "trial": t.number, "value": t.value,
                    "noise": r.signal.best_text(), "within_noise": len(r.signal.within),
                    "params": dict(t.params), "epochs": r.plan.epochs,
                    "subset": r.plan.subset, "mlflow_run_id": t.user_attrs.get(A.RUN_ID),
                    "diagnosis": t.user_attrs.get(A.DIAGNOSIS)}
    return {"study": plan.study, "storage": redact_url(plan.storage), "metric": plan.metric,
            "direction": plan.direction, "headline": headline_of(best, confirmed, skipped),
            "stages": stages, "best": best_obj, "confirm": confirmed,
            "best_recipe_path": str(best_path) if best_path else None,
            "csv_path": str(csv_path), "seconds": round(seconds, 2)}


def headline_of(best: tuple | None, confirmed: dict[str, Any] | None,
                skipped: str = "") -> str:
    """The conclusion, in one line: the confirming stage's verdict, else what the search
    alone can say (one seed per trial: not a comparison with the recipe)."""
    if confirmed is not None:
        return confirmed["headline"]
    if best is None:
        return "no trial completed"
    r, t = best
    why = f"{skipped}; give a larger --budget to confirm it" if skipped else \
        "run without --no-confirm to confirm it"
    return (f"best trial {r.plan.name}-{t.number:02d}: {r.signal.best_text()}, one seed, "
            f"not compared with the recipe ({why})")


