"""A search as MLflow shows it: the parent run's description, metrics, tags and artifacts
(plots, trials.csv, best.yaml, search.json), each stage run's findings, and the runs ended
KILLED when the search is interrupted."""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any

from cnnexp import tracking
from cnnexp.files import replaced
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan
from cnnexp.search.results import StageResult, parent_markdown, stage_markdown
from cnnexp.search.stages import narrowing_text
from cnnexp.tracking import tags as T


def mark_interrupted(storage: Any, plan: Plan, parent: tracking.Run | None) -> None:
    import optuna

    if parent is None:
        return
    for sp in plan.stages:
        with contextlib.suppress(KeyError):
            study = optuna.load_study(study_name=f"{plan.study}/{sp.name}", storage=storage)
            tracking.end_if_running(study.user_attrs.get(A.RUN_ID), "KILLED")
    parent.describe(f"Search `{plan.study}` interrupted; continue with "
                    f"`cnnexp search ... --study {plan.study} --resume`")
    tracking.end_run(parent, "KILLED")


def log_search(plan: Plan, results: list[StageResult], best: tuple | None,
                   parent: tracking.Run, out: Path, seconds: float,
                   result: dict[str, Any]) -> None:
    from cnnexp.search.plots import figures, importance_scores, importance_text

    for r in results:
        stage_run = tracking.attach(r.study.user_attrs.get(A.RUN_ID), parent.client)
        if stage_run is None:
            continue
        s = r.summary()
        stage_run.describe(stage_markdown(r, plan.metric, narrowing_text(r.study.user_attrs)))
        fid = r.fidelity
        stage_run.log_metrics({k: s[k] for k in ("complete", "pruned", "failed")} |
                              ({"best_value": s["best_value"]} if s["best_value"] is not None
                               else {}) |
                              ({"fidelity_rho": fid.rho} if fid and math.isfinite(fid.rho)
                               else {}))
        if fid:
            stage_run.set_tags({T.FIDELITY: fid.verdict})
        if tracking.run_status(stage_run) != "FINISHED":
            tracking.end_run(stage_run, "FINISHED")
    found = importance_scores(results)  # computed once: the figure and the sentence
    for name, fig in figures(results, plan.metric, plan.direction, found).items():
        with replaced(out / name) as tmp:
            fig.savefig(tmp, dpi=110)  # rendered once, logged as the file
        parent.log_artifact(str(out / name), "plots")
    import matplotlib.pyplot as plt

    plt.close("all")  # Optuna's plots live in pyplot's registry until closed
    parent.log_artifact(str(out / "trials.csv"))
    if result["best_recipe_path"]:
        parent.log_artifact(result["best_recipe_path"])
        parent.log_metrics({"best_value": result["best"]["value"]})
    confirmed = result.get("confirm")
    if confirmed:
        parent.log_metrics({k: v for k, v in {
            "confirm_best_mean": confirmed["best"]["mean"],
            "confirm_recipe_mean": confirmed["recipe"]["mean"],
            "confirm_delta": confirmed["delta"], "confirm_p": confirmed["p_value"],
            "confirm_detectable": confirmed.get("detectable", math.nan),
            "confirm_seeds": float(confirmed["seeds"]),
            **({"test_acc_mean": confirmed["test"]["test_acc_mean"]}
               if confirmed.get("test") else {})}.items()
            if isinstance(v, float) and math.isfinite(v)})
        parent.set_tags({T.CONFIRM_VERDICT: confirmed["verdict"]})
    with tempfile.TemporaryDirectory() as tmp:
        import json

        path = Path(tmp) / "search.json"
        path.write_text(json.dumps(result, indent=1, default=str))
        parent.log_artifact(str(path))
    parent.describe(f"**{result['headline']}**\n\n" +
                    parent_markdown(plan, results, best, seconds) + "\n\n" +
                    importance_text(*found))
    parent.set_tags({T.EDGE_WARNINGS: sum(len(s["edge_warnings"])
                                                 for s in result["stages"])})
    tracking.end_run(parent, "FINISHED")
