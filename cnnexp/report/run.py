"""`cnnexp report`: one self-contained HTML page summarising what MLflow holds about a study,
an ablation, a sanity run or a training run (or a whole experiment of them)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnexp.errors import BadInput, did_you_mean
from cnnexp.report import routine
from cnnexp.tracking import query, store
from cnnexp.tracking import tags as T

REPORTED = tuple(k.value for k in T.REPORTED)  # top-level runs a report covers, in order
REPORT_ARTIFACT = "report"


@dataclass
class Subject:
    title: str
    experiment_id: str
    runs: list[dict[str, Any]]  # top-level runs, newest first
    whole: bool = False  # the whole experiment (it then opens with the routine's summary)


def resolve(ref: str | None) -> Subject:
    """A run id (or prefix), an experiment name, a search study or an ablation name; none:
    the latest work across experiments (latest_work)."""

    if ref is None:
        return latest_work()
    try:
        rec = top_of(query.resolve_run(ref))  # BadInput for a prefix shared by several runs
        return Subject(f"{_kind(rec) or 'run'} {rec['name']}", rec["experiment_id"], [rec])
    except query.NoRun:
        pass
    exp_id = query.experiment_by_name(ref)
    if exp_id is not None:
        return _experiment(exp_id, ref)
    named = [r for r in query.recent_runs(limit=2000) if ref in (
        r["tags"].get(T.STUDY), r["tags"].get(T.ABLATION)) and not r["parent_id"]]
    if named:
        return Subject(f"{_kind(named[0])} {ref}", named[0]["experiment_id"], named[:1])
    names = [n for _, n in query.experiments()] + [
        v for r in query.recent_runs(limit=2000) for k, v in r["tags"].items()
        if k in (T.STUDY, T.ABLATION)]
    raise BadInput(f"no run, experiment, study or ablation named '{ref}'"
                   f"{did_you_mean(ref, names)}")


def latest_work(scan: int = 2000) -> Subject:
    """The newest top-level run of each kind in the whole store, whatever experiment holds it
    (sanity, search and ablation often live in experiments of their own), plus the newest
    run with a test figure and the newest search's tuned and start recipes' test runs: the
    routine's state at a glance."""
    top = [r for r in query.recent_runs(limit=scan) if not r["parent_id"] and _kind(r) in REPORTED]
    if not top:
        raise BadInput("nothing to report: the tracking store has no cnnexp runs yet")
    picked: dict[str, dict[str, Any]] = {}
    for r in top:  # newest first
        picked.setdefault(_kind(r), r)
        if "test_acc" in r["metrics"]:
            picked.setdefault("tested", r)
    found = routine.find(picked.get("search"), top)  # the tuned and the start recipe's test runs
    picked |= {k: r for k, r in (("tuned", found.tuned), ("start", found.start)) if r}
    runs = sorted({r["run_id"]: r for r in picked.values()}.values(),
                  key=lambda r: -(r["start_time"] or 0))
    exps = {r["experiment_id"] for r in runs}
    names = dict(query.experiments())
    where = ", ".join(sorted(names.get(e, e) for e in exps))
    return Subject(f"latest work ({where})", primary_of(runs)["experiment_id"], runs, whole=True)


def top_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The top-level run above `rec`: parent after parent, stopping at a missing parent or at
    a run seen before (a store edited by hand can name a run, or its child, as parent)."""
    seen = {rec["run_id"]}
    while rec["parent_id"] and rec["parent_id"] not in seen:
        parent = query.find_run(rec["parent_id"])
        if parent is None:
            break
        seen.add(parent["run_id"])
        rec = parent
    return rec


def _experiment(exp_id: str, name: str) -> Subject:

    runs = [r for r in query.runs_in(exp_id) if not r["parent_id"] and _kind(r) in REPORTED]
    # a recipe's search and ablation live in experiments of their own (the study's, the
    # ablation's): found by the recipe they started from
    mine = {r["run_id"] for r in runs}
    if "'" not in name and "\\" not in name:  # a name MLflow's filter can quote as is
        runs += [r for r in query.recent_runs(f"tags.`{T.RECIPE}` = '{name}'")
                 if not r["parent_id"] and _kind(r) in ("search", "ablation", "sanity")
                 and r["run_id"] not in mine]
    if not runs:
        raise BadInput(f"experiment '{name}' has no cnnexp runs to report")
    runs.sort(key=lambda r: -(r["start_time"] or 0))
    return Subject(f"experiment {name}", exp_id, runs, whole=True)


def _kind(r: dict[str, Any]) -> str:
    return T.kind_of(r["tags"])


def primary(subject: Subject) -> dict[str, Any]:
    """The run the report is logged to: the newest ablation, else search, sanity, train."""
    return primary_of(subject.runs)


def primary_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    order = {"ablation": 0, "search": 1, "sanity": 2, "train": 3}
    return min(runs, key=lambda r: (order.get(_kind(r), 9), -(r["start_time"] or 0)))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "report"


def build(ref: str | None, out: Path | None = None, log: bool = True) -> dict[str, Any]:
    """Write the HTML file (and log it to the primary run); returns what --json prints."""
    from cnnexp.report import html as H
    from cnnexp.report import sections as S
    from cnnexp.report.summary import section as summary_section

    subject = resolve(ref)
    by_kind = {k: [r for r in subject.runs if _kind(r) == k] for k in REPORTED}
    sections = [summary_section(by_kind)] if subject.whole else []
    for kind, render in (("sanity", S.sanity), ("search", S.search),
                         ("ablation", S.ablation), ("train", S.train)):
        sections += [render(r) for r in by_kind[kind]]
    counts = ", ".join(f"{len(v)} {k}" for k, v in by_kind.items() if v)
    names = dict(query.experiments())
    held = sorted({names.get(r["experiment_id"], r["experiment_id"]) for r in subject.runs})
    html = H.page(f"cnnexp report: {subject.title}",
                  f"Tracking store `{store.shown_uri()}`; "
                  f"{'experiments' if len(held) > 1 else 'experiment'} {', '.join(held)}; "
                  f"{counts}; generated {time.strftime('%Y-%m-%d %H:%M')}.", sections)
    name = f"{slug(subject.title)}.html"
    path = out or Path("outputs") / "report" / name
    if path.is_dir():
        path = path / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write the report to '{path}': {exc.strerror or exc}") from None
    target = primary(subject)
    if log:
        run = store.attach(target["run_id"])
        if run is not None:
            run.log_artifact(str(path), REPORT_ARTIFACT)
    return {"out": str(path), "subject": subject.title, "experiment_id": subject.experiment_id,
            "runs": [{"run_id": r["run_id"], "name": r["name"], "kind": _kind(r)}
                     for r in subject.runs],
            "logged_to": target["run_id"] if log else None,
            "artifact": f"{REPORT_ARTIFACT}/{path.name}" if log else None,
            "bytes": path.stat().st_size}
