"""Reading runs back (cnnexp diagnose, report, ablate --resume): plain-dict records, paged
searches, metric histories and artifacts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from cnnexp.tracking import tags as T
from cnnexp.tracking.store import client

PAGE = 1000  # MLflow's largest page for search_runs
ML_VIEW = "workflowType=machine_learning"


def runs_url(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's runs table (or one run's page) in its "Model training" view."""
    page = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{page}/{run_id}?{ML_VIEW}" if run_id else f"{page}?{ML_VIEW}"


def experiments(c: MlflowClient | None = None) -> list[tuple[str, str]]:
    """(id, name) of the store's active experiments."""
    c = c or client()
    return [(e.experiment_id, e.name) for e in c.search_experiments()]


def experiment_by_name(name: str, c: MlflowClient | None = None) -> str | None:
    """The id of an active experiment with this name, else None."""
    exp = (c or client()).get_experiment_by_name(name)
    return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None


def run_record(run: Any) -> dict[str, Any]:
    """A plain-dict view of an MLflow run (what diagnose/report read)."""
    info, data = run.info, run.data
    return {"run_id": info.run_id, "name": info.run_name, "experiment_id": info.experiment_id,
            "status": info.status, "start_time": info.start_time, "tags": dict(data.tags),
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


def find_run(run_id: str, c: MlflowClient | None = None) -> dict[str, Any] | None:
    """The run with this id, or with this unique id prefix (>= 6 characters); else None."""
    c = c or client()
    try:
        return run_record(c.get_run(run_id))
    except mlflow.exceptions.MlflowException:
        pass
    if len(run_id) < 6:
        return None
    hits = [r for r in recent_runs(c=c) if r["run_id"].startswith(run_id)]
    return hits[0] if len(hits) == 1 else None


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
