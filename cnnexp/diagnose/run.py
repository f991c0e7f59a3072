"""`cnnexp diagnose RUN_ID`: the learning-curve diagnosis of any tracked run, from MLflow."""

from __future__ import annotations

from typing import Any

from cnnexp.diagnose.rules import context_of, diagnose, parse_thresholds
from cnnexp.errors import BadInput, closest
from cnnexp.tracking import query
from cnnexp.tracking import tags as T

CURVE_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


def resolve_run(run_id: str) -> dict[str, Any]:
    """The run (full id or unique prefix); BadInput naming the nearest or newest runs, the
    runs a prefix matches, or why a prefix is too short."""
    try:
        return query.resolve_run(run_id)
    except query.NoRun as exc:
        raise BadInput(f"{exc}{_hint(run_id)}") from None


def _hint(run_id: str) -> str:
    runs = query.recent_runs(limit=500)
    near = closest(run_id, [r["run_id"] for r in runs], n=1)
    if near:
        name = next(r["name"] for r in runs if r["run_id"] == near[0])
        return f" (did you mean '{near[0]}' ({name})?)"
    if runs:
        return " (newest: " + ", ".join(f"{r['run_id']} ({r['name']})" for r in runs[:3]) + ")"
    return " (the store has no runs yet: `cnnexp train` makes one)"


def curves(rec: dict[str, Any]) -> list[dict[str, float]]:
    """Per-epoch history of a run: only epochs with all four curves (a diverged run keeps its
    last, partial epoch so the divergence shows)."""
    hist = query.metric_history(rec["run_id"], CURVE_KEYS)
    full = [h for h in hist if all(k in h for k in CURVE_KEYS)]
    if rec["tags"].get(T.STATUS) == "diverged":
        return hist
    return full


def diagnose_run(run_id: str, thresholds: list[str] | None = None) -> dict[str, Any]:
    t = parse_thresholds(thresholds)  # bad thresholds fail before the store is touched
    rec = resolve_run(run_id)
    hist = curves(rec)
    if not hist:
        raise BadInput(_no_curves(rec))
    status = rec["tags"].get(T.STATUS, "completed")
    # the chance level and the validation set's size, as the run logged them (not_learning, noise)
    d = diagnose(hist, status=status, thresholds=t, **context_of(rec))
    return {"run_id": rec["run_id"], "run_name": rec["name"],
            "experiment_id": rec["experiment_id"], **d.to_dict(),
            "tagged": rec["tags"].get(T.DIAGNOSIS), "thresholds": t.model_dump()}


def _no_curves(rec: dict[str, Any]) -> str:
    kids = query.child_runs(rec["run_id"], rec["experiment_id"])
    msg = f"run '{rec['run_id']}' ({rec['name']}) has no per-epoch train/val curves"
    if kids:
        with_curves = [k for k in kids if "val_acc" in k["metrics"]] or kids
        k = with_curves[0]
        msg += (f"; it is a parent of {len(kids)} run(s): try one of them, e.g. "
                f"'{k['run_id']}' ({k['name']})")
    return msg
