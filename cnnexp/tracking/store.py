"""The only module that imports MLflow.

Runs are created with MlflowClient (no global active-run state), so nested runs from several
threads or processes stay explicit: a child carries `mlflow.parentRunId`. A run always ends:
FINISHED, FAILED on an exception, KILLED on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from cnnexp.engine.callbacks import Callback, FitState

if TYPE_CHECKING:
    from cnnexp.data.bundle import DataBundle
    from cnnexp.schema import Recipe

# MLflow configures its own loggers at import; its INFO lines (DB migrations) are noise here.
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.ERROR)

PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
# Marks experiments as model training, not GenAI: MLflow 3.x UIs that read this tag open the
# runs table. (3.17 decides by its GenAI/"Model training" switch instead, which a link's
# `?workflowType=machine_learning` sets: see runs_url.)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
ML_VIEW = "workflowType=machine_learning"


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
        if EXPERIMENT_KIND_TAG not in exp.tags:  # stores made before cnnexp set it
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    try:
        return c.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
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
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

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
        self.client.set_tag(self.run_id, NOTE_TAG, markdown)

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_figure(self, figure: Any, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def log_artifact(self, local_path: str, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, local_path, folder)

    def local_artifact_dir(self) -> Path | None:
        """The run's artifact folder when it is on this file system (files can then be
        written there directly, atomically), else None."""
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        parsed = urlparse(self.client.get_run(self.run_id).info.artifact_uri)
        return Path(url2pathname(parsed.path)) if parsed.scheme in ("", "file") else None

    def log_dataset(self, data: DataBundle, context: str = "train") -> None:
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        digest = _digest(data)
        source = CodeDatasetSource(tags={"source": data.source})
        ds = MetaDataset(source=source, name=data.name, digest=digest)
        self.client.log_inputs(self.run_id, [DatasetInput(
            ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])])


def _digest(data: DataBundle) -> str:
    h = hashlib.sha256(data.source.encode())
    if data.in_memory:
        assert data.train_x is not None and data.train_y is not None
        h.update(data.train_y.cpu().numpy().tobytes())
        h.update(data.train_x[:512].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@contextmanager
def run(experiment: str, name: str, *, parent: Run | None = None,
        tags: Mapping[str, Any] | None = None, description: str | None = None) -> Iterator[Run]:
    """Create a run, yield it, and end it with the status that matches how the block ended."""
    with _ending(start_run(experiment, name, parent=parent, tags=tags,
                           description=description)) as handle:
        yield handle


@contextmanager
def _ending(handle: Run) -> Iterator[Run]:
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
    with _ending(handle):
        yield handle


def download(run_id: str, artifact_path: str, dst: Path) -> Path | None:
    """An artifact of the run copied to dst, or None when the run has none at that path."""
    try:
        return Path(client().download_artifacts(run_id, artifact_path, str(dst)))
    except (mlflow.exceptions.MlflowException, OSError):
        return None


def recipe_tags(recipe: Recipe) -> dict[str, str]:
    return {f"cnnexp.{group}": name for group, name in recipe.defaults.items()} | {
        "cnnexp.recipe": recipe.name}


def log_recipe(r: Run, recipe: Recipe) -> None:
    from cnnexp.recipe import to_yaml

    r.log_params(recipe.flat())
    r.log_text(to_yaml(recipe), "recipe.yaml")


class EpochLogger(Callback):
    """Per-epoch metrics in one batched request per epoch (never one request per step)."""

    def __init__(self, r: Run) -> None:
        self.run = r

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        step = int(metrics["epoch"])
        self.run.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=step)


# Runs that outlive one process (search: a stage run is created by one worker and ended by
# whichever worker finishes the stage; a study's parent run is reopened on --resume).
def start_run(experiment: str, name: str, *, parent: Run | None = None,
              tags: Mapping[str, Any] | None = None, description: str | None = None) -> Run:
    """Create a run without ending it; end it later with `end_run` (from any process)."""
    c = parent.client if parent else client()
    exp_id = parent.experiment_id if parent else experiment_id(experiment, c)
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    if parent:
        all_tags[PARENT_TAG] = parent.run_id
    if description:
        all_tags[NOTE_TAG] = description
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


def run_status(r: Run) -> str:
    return r.client.get_run(r.run_id).info.status


def end_run(r: Run, status: str = "FINISHED") -> None:
    """FINISHED / FAILED / KILLED, or RUNNING to reopen a run (resume)."""
    if status == "RUNNING":
        r.client.update_run(r.run_id, status="RUNNING")
    else:
        r.client.set_terminated(r.run_id, status)


# Reading runs back (cnnexp diagnose, cnnexp report).
def runs_url(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's runs table (or one run's page) in its "Model training" view."""
    page = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{page}/{run_id}?{ML_VIEW}" if run_id else f"{page}?{ML_VIEW}"


def experiments(c: MlflowClient | None = None) -> list[tuple[str, str]]:
    """(id, name) of the store's active experiments."""
    c = c or client()
    return [(e.experiment_id, e.name) for e in c.search_experiments()]


def run_record(run: Any) -> dict[str, Any]:
    """A plain-dict view of an MLflow run (what diagnose/report read)."""
    info, data = run.info, run.data
    return {"run_id": info.run_id, "name": info.run_name, "experiment_id": info.experiment_id,
            "status": info.status, "start_time": info.start_time, "tags": dict(data.tags),
            "params": dict(data.params), "metrics": dict(data.metrics),
            "parent_id": data.tags.get(PARENT_TAG), "description": data.tags.get(NOTE_TAG, "")}


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


def recent_runs(filter_string: str = "", limit: int = 1000,
                c: MlflowClient | None = None) -> list[dict[str, Any]]:
    """Runs of every experiment, newest first (at most `limit`)."""
    c = c or client()
    ids = [e for e, _ in experiments(c)]
    if not ids:
        return []
    runs = c.search_runs(ids, filter_string, max_results=limit, order_by=["start_time DESC"])
    return [run_record(r) for r in runs]


def child_runs(run_id: str, experiment_id: str, c: MlflowClient | None = None
               ) -> list[dict[str, Any]]:
    """Direct children of a run (nested runs), oldest first."""
    c = c or client()
    out, token = [], None
    while True:
        page = c.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'",
                             max_results=1000, order_by=["start_time ASC"], page_token=token)
        out += [run_record(r) for r in page]
        token = page.token
        if not token:
            return out


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


def artifact_text(run_id: str, path: str, c: MlflowClient | None = None) -> str | None:
    """A text artifact's content, or None when the run has none at that path."""
    import tempfile

    c = c or client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = c.download_artifacts(run_id, path, tmp)
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        return Path(local).read_text(encoding="utf-8") if Path(local).is_file() else None


def artifact_paths(run_id: str, folder: str = "", c: MlflowClient | None = None) -> list[str]:
    """Files (not folders) directly under an artifact folder of the run."""
    c = c or client()
    return [f.path for f in c.list_artifacts(run_id, folder or None) if not f.is_dir]


def experiment_by_name(name: str, c: MlflowClient | None = None) -> str | None:
    """The id of an active experiment with this name, else None."""
    exp = (c or client()).get_experiment_by_name(name)
    return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None


def runs_in(experiment_id: str, filter_string: str = "", c: MlflowClient | None = None
            ) -> list[dict[str, Any]]:
    """Every run of an experiment matching the filter, newest first."""
    c = c or client()
    out, token = [], None
    while True:
        page = c.search_runs([experiment_id], filter_string, max_results=1000,
                             order_by=["start_time DESC"], page_token=token)
        out += [run_record(r) for r in page]
        token = page.token
        if not token:
            return out


def artifact_bytes(run_id: str, path: str, c: MlflowClient | None = None) -> bytes | None:
    """A binary artifact (e.g. a PNG), or None when the run has none at that path."""
    import tempfile

    c = c or client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(c.download_artifacts(run_id, path, tmp))
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        return local.read_bytes() if local.is_file() else None
