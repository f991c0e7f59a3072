"""`cnnexp diagnose RUN_ID`: the learning-curve diagnosis of any tracked run, from MLflow."""

from __future__ import annotations

from typing import Any

from cnnexp.diagnose.rules import diagnose, parse_thresholds
from cnnexp.errors import BadInput, closest

CURVE_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


def resolve_run(run_id: str) -> dict[str, Any]:
    """The run (full id or unique prefix); BadInput naming the nearest or newest runs."""
    from cnnexp import tracking

    rec = tracking.find_run(run_id)
    if rec is not None:
        return rec
    runs = tracking.recent_runs(limit=500)
    near = closest(run_id, [r["run_id"] for r in runs], n=1)
    if near:
        name = next(r["name"] for r in runs if r["run_id"] == near[0])
        hint = f" (did you mean '{near[0]}' ({name})?)"
    elif runs:
        hint = " (newest: " + ", ".join(f"{r['run_id']} ({r['name']})" for r in runs[:3]) + ")"
    else:
        hint = " (the store has no runs yet: `cnnexp train` makes one)"
    raise BadInput(f"no run '{run_id}' in the tracking store {tracking.tracking_uri()}{hint}")


def curves(rec: dict[str, Any]) -> list[dict[str, float]]:
    """Per-epoch history of a run: only epochs with all four curves (a diverged run keeps its
    last, partial epoch so the divergence shows)."""
    from cnnexp import tracking

    hist = tracking.metric_history(rec["run_id"], CURVE_KEYS)
    full = [h for h in hist if all(k in h for k in CURVE_KEYS)]
    if rec["tags"].get("cnnexp.status") == "diverged":
        return hist
    return full


def diagnose_run(run_id: str, thresholds: list[str] | None = None) -> dict[str, Any]:
    t = parse_thresholds(thresholds)  # bad thresholds fail before the store is touched
    rec = resolve_run(run_id)
    hist = curves(rec)
    if not hist:
        raise BadInput(_no_curves(rec))
    status = rec["tags"].get("cnnexp.status", "completed")
    d = diagnose(hist, status=status, thresholds=t)
    return {"run_id": rec["run_id"], "run_name": rec["name"],
            "experiment_id": rec["experiment_id"], **d.to_dict(),
            "tagged": rec["tags"].get("diagnosis"), "thresholds": t.model_dump()}


def _no_curves(rec: dict[str, Any]) -> str:
    from cnnexp import tracking

    kids = tracking.child_runs(rec["run_id"], rec["experiment_id"])
    msg = f"run '{rec['run_id']}' ({rec['name']}) has no per-epoch train/val curves"
    if kids:
        with_curves = [k for k in kids if "val_acc" in k["metrics"]] or kids
        k = with_curves[0]
        msg += (f"; it is a parent of {len(kids)} run(s): try one of them, e.g. "
                f"'{k['run_id']}' ({k['name']})")
    return msg


def print_diagnosis(out: dict[str, Any]) -> None:
    """Human output: verdict, evidence table, remedies."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    colour = {"healthy": "green", "not_converged": "yellow"}.get(out["diagnosis"], "red")
    con.print(f"[bold]{out['run_name']}[/] ({out['run_id']})", highlight=False)
    con.print(f"diagnosis: [bold {colour}]{out['diagnosis']}[/] — {out['summary']}",
              highlight=False)
    table = Table("evidence", "value", title_justify="left", show_header=False)
    for k, v in out["evidence"].items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    con.print(table)
    for title, items in (("remedies", out["remedies"]), ("not remedies", out["not_remedies"])):
        if items:
            con.print(f"[bold]{title}:[/]")
            for item in items:
                con.print(f"  - {item}", highlight=False)
