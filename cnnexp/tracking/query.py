"""Reading runs back (cnnexp diagnose, report, ablate --resume): plain-dict records, paged
searches, metric histories and artifacts."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from cnnexp.errors import BadInput
from cnnexp.tracking import tags as T
from cnnexp.tracking.store import client

PAGE = 1000  # MLflow's largest page for search_runs
ML_VIEW = "workflowType=machine_learning"


def runs_url(base: str, experiment_id: str, run_id: str | None = None,
             view: bool = True, key: str | None = None) -> str:
    """The MLflow UI's runs table, opened in one of the experiment's saved views
    (tracking.views; `key`: default every run by best_val_acc; `view=False` for an experiment
    cnnexp did not make), or one run's page; both in the "Model training" view."""
    from cnnexp.tracking.views import VIEW_KEY

    page = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
    if run_id:
        return f"{page}/{run_id}?{ML_VIEW}"
    return f"{page}?{ML_VIEW}" + (f"&viewStateShareKey={key or VIEW_KEY}" if view else "")


def experiments(c: MlflowClient | None = None) -> list[tuple[str, str]]:
    """(id, name) of the store's active experiments."""
    c = c or client()
    found, token = [], None
    while True:  # page through: a store may hold more experiments than one page
        page = c.search_experiments(max_results=PAGE, page_token=token)
        found += [(e.experiment_id, e.name) for e in page]
        token = page.token
        if not token:
            return found


def experiment_by_name(name: str, c: MlflowClient | None = None) -> str | None:
    """The id of an active experiment with this name, else None."""
    exp = (c or client()).get_experiment_by_name(name)
    return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None


def run_record(run: Any) -> dict[str, Any]:
    """A plain-dict view of an MLflow run (what diagnose/report read)."""
    info, data = run.info, run.data
    return {"run_id": info.run_id, "name": info.run_name, "experiment_id": info.experiment_id,
            "status": info.status, "start_time": info.start_time, "end_time": info.end_time,
            "tags": dict(data.tags),
            "params": dict(data.params), "metrics": dict(data.metrics),
            "parent_id": data.tags.get(T.PARENT), "description": data.tags.get(T.NOTE, "")}


def search(experiment_ids: list[str], filter_string: str = "", *,
           order_by: tuple[str, ...] = ("start_time DESC",), limit: int | None = None,
           c: MlflowClient | None = None) -> Iterator[Any]:
    """MLflow runs matching the filter, page after page (at most `limit` when given)."""
    c = c or client()
    if not experiment_ids:
        return
    token, seen = None, 0
    while True:
        size = PAGE if limit is None else min(PAGE, limit - seen)
        page = c.search_runs(experiment_ids, filter_string, max_results=size,
                             order_by=list(order_by), page_token=token)
        yield from page
        seen += len(page)
        token = page.token
        if not token or (limit is not None and seen >= limit):
            return


def runs_in(experiment_id: str, filter_string: str = "", c: MlflowClient | None = None
            ) -> list[dict[str, Any]]:
    """Every run of an experiment matching the filter, newest first."""
    return [run_record(r) for r in search([experiment_id], filter_string, c=c)]


def recent_runs(filter_string: str = "", limit: int = 1000,
                c: MlflowClient | None = None) -> list[dict[str, Any]]:
    """Runs of every experiment, newest first (at most `limit`)."""
    c = c or client()
    ids = [e for e, _ in experiments(c)]
    return [run_record(r) for r in search(ids, filter_string, limit=limit, c=c)]


def child_runs(run_id: str, experiment_id: str, c: MlflowClient | None = None
               ) -> list[dict[str, Any]]:
    """Direct children of a run (nested runs), oldest first."""
    return [run_record(r) for r in search([experiment_id], f"tags.`{T.PARENT}` = '{run_id}'",
                                          order_by=("start_time ASC",), c=c)]


MIN_PREFIX = 6  # shorter prefixes of a 32-character run id are too easily shared
_ID_CHARS = re.compile(r"[0-9A-Za-z-]+")


class NoRun(BadInput):
    """No run has this id or starts with it (callers may add hints)."""


def find_run(run_id: str, c: MlflowClient | None = None) -> dict[str, Any] | None:
    """The run with this id, or with this unique id prefix (>= 6 characters); else None."""
    try:
        return run_record(_resolve(run_id, c or client()))
    except BadInput:
        return None


def resolve_run(ref: str, c: MlflowClient | None = None) -> dict[str, Any]:
    """The record of the run `ref` names (see resolve_run_id); BadInput (NoRun when nothing
    matches) otherwise."""
    return run_record(_resolve(ref, c or client()))


def resolve_run_id(ref: str, c: MlflowClient | None = None) -> tuple[str, str]:
    """(run id, experiment id) of the run `ref` names (a full id or a unique prefix of at
    least 6 characters); BadInput saying why not: no such run, several, or too short."""
    run = _resolve(ref, c or client())
    return run.info.run_id, run.info.experiment_id


def _resolve(ref: str, c: MlflowClient) -> Any:
    from cnnexp.tracking.store import shown_uri

    try:
        return c.get_run(ref)
    except mlflow.exceptions.MlflowException:
        pass
    where = f"in the tracking store {shown_uri()}"
    if not _ID_CHARS.fullmatch(ref):
        raise NoRun(f"no run '{ref}' {where} (a run id is 32 letters and digits)")
    hits = prefix_matches(ref, c) if len(ref) >= MIN_PREFIX else []
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        shown = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in hits[:3])
        more = " and more" if len(hits) > 3 else ""
        raise BadInput(f"run id prefix '{ref}' is ambiguous: matches {shown}{more}; give "
                       "more characters")
    if len(ref) < MIN_PREFIX:
        raise NoRun(f"no run '{ref}' {where}: a prefix needs at least {MIN_PREFIX} "
                       f"characters of the run id (got {len(ref)})")
    raise NoRun(f"no run '{ref}' {where}")


def prefix_matches(prefix: str, c: MlflowClient | None = None, limit: int = 4) -> list[Any]:
    """Runs of every experiment whose id starts with `prefix` (at most `limit`), all runs
    searched, not only the newest page."""
    c = c or client()
    ids = [e for e, _ in experiments(c)]
    return list(search(ids, f"attributes.run_id LIKE '{prefix}%'", limit=limit, c=c))


def metric_history(run_id: str, keys: tuple[str, ...] = (
        "train_loss", "train_acc", "val_loss", "val_acc"), c: MlflowClient | None = None
                   ) -> list[dict[str, float]]:
    """One dict per logged step (epoch) holding each of `keys` logged at that step."""
    c = c or client()
    steps: dict[int, dict[str, float]] = {}
    for key in keys:
        for m in c.get_metric_history(run_id, key):
            steps.setdefault(m.step, {"epoch": m.step})[key] = m.value
    return [steps[s] for s in sorted(steps)]


def artifact_bytes(run_id: str, path: str, c: MlflowClient | None = None) -> bytes | None:
    """A file artifact's content, or None when the run has none at that path."""
    c = c or client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(c.download_artifacts(run_id, path, tmp))
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        return local.read_bytes() if local.is_file() else None


def artifact_text(run_id: str, path: str, c: MlflowClient | None = None) -> str | None:
    """A text artifact's content, or None when the run has none at that path."""
    data = artifact_bytes(run_id, path, c)
    return data.decode("utf-8") if data is not None else None


def artifact_paths(run_id: str, folder: str = "", c: MlflowClient | None = None) -> list[str]:
    """Files (not folders) directly under an artifact folder of the run."""
    c = c or client()
    return [f.path for f in c.list_artifacts(run_id, folder or None) if not f.is_dir]
