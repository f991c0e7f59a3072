"""One HTML section per top-level run kind, read back from MLflow (descriptions, tags,
metric histories and artifacts): sanity verdicts, search stages, ablation table, training run."""

from __future__ import annotations

import html
import json
from typing import Any

from cnnexp.report import html as H
from cnnexp.report import overlay
from cnnexp.tracking import query
from cnnexp.tracking import tags as T


def _head(r: dict[str, Any], title: str) -> str:
    return (f"<h2>{html.escape(title)}</h2><p class=muted>run <code>{r['run_id']}</code> · "
            f"{html.escape(r['name'] or '')} · {r['status'].lower()}</p>")


def _pngs(run_id: str, folder: str = "", caption: str = "") -> list[str]:

    out = []
    for path in sorted(query.artifact_paths(run_id, folder)):
        if path.endswith(".png"):
            data = query.artifact_bytes(run_id, path)
            if data:
                out.append(H.img(data, path, f"{caption}{path}"))
    return out


def sanity(r: dict[str, Any]) -> str:

    verdict = r["tags"].get(T.STATUS, r["status"].lower())
    parts = [_head(r, f"Sanity checks: {verdict}"), H.markdown(r["description"])]
    figs = []
    for child in query.child_runs(r["run_id"], r["experiment_id"]):
        figs += _pngs(child["run_id"], caption=f"{child['name']}: ")
    parts.append(H.grid(figs))
    return "\n".join(parts)


def _ranges_table(stage: dict[str, Any]) -> str:
    rows = []
    for p, d in stage.get("ranges", {}).items():
        if "choices" in d:
            shown = "{" + ", ".join(map(str, d["choices"])) + "}"
        else:
            shown = f"[{d['low']:.3g}, {d['high']:.3g}]" + (" log" if d.get("log") else "")
        rows.append([p, shown, _fmt(stage.get("best_params", {}).get(p, ""))])
    return H.table(["parameter", "range", "best"], rows)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _trial_diagnoses(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Trial runs by MLflow run id (children of the stage runs)."""

    out = {}
    for stage in query.child_runs(r["run_id"], r["experiment_id"]):
        for t in query.child_runs(stage["run_id"], r["experiment_id"]):
            out[t["run_id"]] = t
            out[t["name"]] = t
    return out


def search(r: dict[str, Any]) -> str:

    study = r["tags"].get(T.STUDY, r["name"])
    parts = [_head(r, f"Search {study}"), H.markdown(r["description"])]
    text = query.artifact_text(r["run_id"], "search.json")
    if text is None:
        parts.append(H.warning("No search.json: the search has not finished."))
        return "\n".join(parts)
    sj = json.loads(text)
    trials = _trial_diagnoses(r)
    for s in sj["stages"]:
        parts.append(f"<h3>Stage {html.escape(s['name'])}</h3><p>{s['trials']} trials "
                     f"({s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed), "
                     f"{s['epochs']} epochs each.</p>")
        parts.append(_ranges_table(s))
        parts += [H.warning(f"Edge: {w}") for w in s.get("edge_warnings", [])]
        rows = []
        for t in s.get("top", []):
            run = trials.get(t["name"], {})
            rows.append([t["name"], f"{t['value']:.4f}",
                         run.get("tags", {}).get(T.DIAGNOSIS, "-")])
        parts.append(H.table(["top trials", sj["metric"], "diagnosis"], rows))
    last = sj["stages"][-1] if sj["stages"] else {}
    top = [(t["name"], trials[t["name"]]) for t in last.get("top", []) if t["name"] in trials]
    if len(top) > 1:
        parts.append(overlay.runs(top[:overlay.MAX_SERIES], f"Top trials of stage "
                                  f"{last['name']}", "top trials' curves"))
    parts.append(_best_trial(sj))
    parts.append(H.grid(_pngs(r["run_id"], "plots")))
    return "\n".join(parts)


def _best_trial(sj: dict[str, Any]) -> str:
    """The best trial's learning curves and their diagnosis."""
    from cnnexp.diagnose.plots import curves_figure, png_bytes
    from cnnexp.diagnose.rules import CURVE_KEYS, context_of, diagnose

    best = sj.get("best") or {}
    run_id = best.get("mlflow_run_id")
    if not run_id:
        return ""
    hist = [h for h in query.metric_history(run_id, (*CURVE_KEYS, "lr"))
            if all(k in h for k in CURVE_KEYS)]
    rec = query.find_run(run_id)
    if not hist or rec is None:
        return ""
    d = diagnose(hist, status=rec["tags"].get(T.STATUS, "completed"),
                 **context_of(rec))
    fig = curves_figure(hist, f"best trial {best['stage']}-{best['trial']:02d}: {d.diagnosis}")
    params = " ".join(f"`{k}={_fmt(v)}`" for k, v in best.get("params", {}).items())
    return (f"<h3>Best trial: {best['stage']}-{best['trial']:02d}</h3>"
            + H.markdown(f"{sj['metric']} = {best['value']:.4f} after {best['epochs']} "
                         f"epochs; {params}\n\n{d.markdown()}")
            + H.img(png_bytes(fig), "best trial curves"))


def ablation(r: dict[str, Any]) -> str:
    name = r["tags"].get(T.ABLATION, r["name"])
    parts = [_head(r, f"Ablation {name}"), H.markdown(r["description"]),
             H.grid(_pngs(r["run_id"], "ablation")),
             overlay.ablation_arms(r, f"Ablation {name}: each arm's curves, mean over seeds")]
    return "\n".join(parts)


def train(r: dict[str, Any]) -> str:
    from cnnexp.diagnose.figures import render

    render(r["run_id"])  # figures not drawn yet (they are drawn off the training path)
    diag = r["tags"].get(T.DIAGNOSIS, "-")
    parts = [_head(r, f"Training run {r['name']}: {diag}"), H.markdown(r["description"]),
             H.grid(_pngs(r["run_id"], "diagnosis") + _pngs(r["run_id"], "classification")
                    + _pngs(r["run_id"], "test"))]
    return "\n".join(parts)
