"""The tracking store and the lifecycle of a run: create, attach, end.

Runs are created with MlflowClient (no global active-run state), so nested runs from several
threads or processes stay explicit: a child carries `mlflow.parentRunId`. A run always ends:
FINISHED, FAILED on an exception, KILLED on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from cnnexp.tracking import tags as T

# MLflow configures its own loggers at import; its INFO lines (DB migrations) are noise here.
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.ERROR)

MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch request


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's own default (a SQLite file in the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def client() -> MlflowClient:
    return MlflowClient(tracking_uri())


def experiment_id(name: str, c: MlflowClient | None = None) -> str:
    """Get or create the experiment (safe when two processes race to create it)."""
    c = c or client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        if T.EXPERIMENT_KIND not in exp.tags:  # stores made before cnnexp set it
            c.set_experiment_tag(exp.experiment_id, T.EXPERIMENT_KIND, T.EXPERIMENT_KIND_VALUE)
        return exp.experiment_id
    try:
        return c.create_experiment(name, tags={T.EXPERIMENT_KIND: T.EXPERIMENT_KIND_VALUE})
    except mlflow.exceptions.MlflowException:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


@dataclass
class Run:
    """A live MLflow run; thin helpers over MlflowClient."""

    client: MlflowClient
    run_id: str
    experiment_id: str
    end_status: str = "FINISHED"  # set to FAILED for a run that ended badly but cleanly

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()
                 if isinstance(v, (int, float))]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def describe(self, markdown: str) -> None:
        """The run description the MLflow UI shows on the run page."""
        self.client.set_tag(self.run_id, T.NOTE, markdown)

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_figure(self, figure: Any, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def log_artifact(self, local_path: str, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, local_path, folder)

    def fail(self) -> None:
        """End FAILED (not FINISHED) when the block ends: the run ended badly but cleanly."""
        self.end_status = "FAILED"

    def local_artifact_dir(self) -> Path | None:
        """The run's artifact folder when it is on this file system (files can then be
        written there directly, atomically), else None."""
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        parsed = urlparse(self.client.get_run(self.run_id).info.artifact_uri)
        return Path(url2pathname(parsed.path)) if parsed.scheme in ("", "file") else None


@contextmanager
def run(experiment: str, name: str, *, parent: Run | None = None,
        tags: Mapping[str, Any] | None = None, description: str | None = None) -> Iterator[Run]:
    """Create a run, yield it, and end it with the status that matches how the block ended."""
    with ending(start_run(experiment, name, parent=parent, tags=tags,
                          description=description)) as handle:
        yield handle


@contextmanager
def ending(handle: Run) -> Iterator[Run]:
    """End the run with the status that matches how the block ended."""
    try:
        yield handle
    except KeyboardInterrupt:
        handle.client.set_terminated(handle.run_id, "KILLED")
        raise
    except BaseException:
        handle.client.set_terminated(handle.run_id, "FAILED")
        raise
    handle.client.set_terminated(handle.run_id, handle.end_status)


# Runs that outlive one process (search: a stage run is created by one worker and ended by
# whichever worker finishes the stage; a study's parent run is reopened on --resume).
def start_run(experiment: str, name: str, *, parent: Run | None = None,
              tags: Mapping[str, Any] | None = None, description: str | None = None) -> Run:
    """Create a run without ending it; end it later with `end_run` (from any process)."""
    c = parent.client if parent else client()
    exp_id = parent.experiment_id if parent else experiment_id(experiment, c)
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    if parent:
        all_tags[T.PARENT] = parent.run_id
    if description:
        all_tags[T.NOTE] = description
    created = c.create_run(exp_id, run_name=name, tags=all_tags)
    return Run(c, created.info.run_id, exp_id)


def attach(run_id: str | None, c: MlflowClient | None = None) -> Run | None:
    """A handle on an existing run of the current store; None if it is not there."""
    if not run_id:
        return None
    c = c or client()
    try:
        info = c.get_run(run_id).info
    except mlflow.exceptions.MlflowException:
        return None
    return Run(c, info.run_id, info.experiment_id)


def require_run(run_id: str) -> Run:
    """A handle on an existing run, or BadInput naming the id when the store has none."""
    from cnnexp.errors import BadInput

    handle = attach(run_id)
    if handle is None:
        raise BadInput(f"no run '{run_id}' in the tracking store {tracking_uri()}")
    return handle


@contextmanager
def reopen(run_id: str) -> Iterator[Run]:
    """Continue logging into an existing run (status RUNNING again until the block ends)."""
    handle = require_run(run_id)
    end_run(handle, "RUNNING")
    with ending(handle):
        yield handle


def run_status(r: Run) -> str:
    return r.client.get_run(r.run_id).info.status


def end_run(r: Run, status: str = "FINISHED") -> None:
    """FINISHED / FAILED / KILLED, or RUNNING to reopen a run (resume)."""
    if status == "RUNNING":
        r.client.update_run(r.run_id, status="RUNNING")
    else:
        r.client.set_terminated(r.run_id, status)


def end_if_running(run_id: str | None, status: str, tags: Mapping[str, Any] | None = None
                   ) -> None:
    """End a run some other process left RUNNING (a dead search worker's trial, an
    interrupted stage), tagging why; a run that already ended is left as it is."""
    r = attach(run_id)
    if r is not None and run_status(r) == "RUNNING":
        if tags:
            r.set_tags(tags)
        end_run(r, status)


def download(run_id: str, artifact_path: str, dst: Path) -> Path | None:
    """An artifact of the run copied to dst, or None when the run has none at that path."""
    try:
        return Path(client().download_artifacts(run_id, artifact_path, str(dst)))
    except (mlflow.exceptions.MlflowException, OSError):
        return None
