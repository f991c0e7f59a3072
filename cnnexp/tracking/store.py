"""The tracking store and the lifecycle of a run: create, attach, end.

Runs are created with MlflowClient (no global active-run state), so nested runs from several
threads or processes stay explicit: a child carries `mlflow.parentRunId`. A run always ends:
FINISHED, FAILED on an exception, KILLED on Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import os
import re
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
# it logs a whole SQL error (~90 lines) before raising it; the raised error is reported in one
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch request


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's own default (a SQLite file in the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def shown_uri() -> str:
    """The tracking URI as it may be printed, logged or put in a report: password redacted."""
    from cnnexp.redact import redact_url

    return redact_url(tracking_uri())


def client() -> MlflowClient:
    """A client on the tracking store; the first call checks the store is usable (one line of
    bad input if not) and creates a new SQLite store under a lock (tracking.connect)."""
    from cnnexp.tracking.connect import open_client

    return open_client(tracking_uri())


def experiment_id(name: str, c: MlflowClient | None = None) -> str:
    """Get or create the experiment (safe when two processes race to create it)."""
    c = c or client()
    try:
        return _experiment_id(name, c)
    except Exception as exc:
        _refuse_unwritable(exc)
        raise


def _experiment_tags() -> dict[str, str]:
    """Set on every cnnexp experiment: the "Model training" kind and the runs-table view."""
    from cnnexp.tracking.views import view_tags

    return {T.EXPERIMENT_KIND: T.EXPERIMENT_KIND_VALUE, **view_tags()}


def _experiment_id(name: str, c: MlflowClient) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        for key, value in _experiment_tags().items():  # stores made before cnnexp set them
            if key not in exp.tags:
                c.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    try:
        return c.create_experiment(name, tags=_experiment_tags())
    except mlflow.exceptions.MlflowException:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def readable(value: float, key: str = "") -> float:
    """A metric as the runs table should show it: seven significant digits (what a float32
    holds), so a float32 accuracy of 919/1000 reads 0.919, not 0.9190000295 cut to
    "0.91900002…"; a standard error (`*_se`) to four decimals as every figure shows it
    (0.0038, not 0.003758496), or two significant digits when smaller."""
    v = float(value)
    if not math.isfinite(v):
        return v
    if key.endswith("_se") and v > 0:
        return round(v, max(4, 1 - math.floor(math.log10(v))))
    return float(f"{v:.7g}")


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
        self.log_batch(metrics=metrics, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.log_batch(tags=tags)

    def log_batch(self, metrics: Mapping[str, float] | None = None,
                  tags: Mapping[str, Any] | None = None, step: int | None = None) -> None:
        """Metrics and tags in one request (one commit on a SQLite store)."""
        now = int(time.time() * 1000)
        items = [Metric(k, readable(v, k), now, step or 0) for k, v in (metrics or {}).items()
                 if isinstance(v, (int, float))]
        run_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        if items or run_tags:
            self.client.log_batch(self.run_id, metrics=items, tags=run_tags)

    def describe(self, markdown: str) -> None:
        """The run description the MLflow UI shows on the run page."""
        self.client.set_tag(self.run_id, T.NOTE, fit_note(markdown))

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
    """End the run with the status that matches how the block ended. When the store or the
    disk fails mid-run, the run is ended FAILED if the store still takes that, and the failure
    becomes StoreFailed (one line, exit 1): what was logged before stays."""
    from cnnexp.errors import StoreFailed, environment_failure

    try:
        yield handle
    except KeyboardInterrupt:
        _terminate_quietly(handle, "KILLED")
        raise
    except StoreFailed:
        _terminate_quietly(handle, "FAILED")
        raise
    except BaseException as exc:
        ended = _terminate_quietly(handle, "FAILED")
        reason = environment_failure(exc) if isinstance(exc, Exception) else None
        if reason is None:
            raise
        raise StoreFailed(f"run {handle.run_id} stopped: {reason}; what it logged before is "
                          f"kept{'' if ended else ' (it could not be marked FAILED)'}") from None
    try:
        handle.client.set_terminated(handle.run_id, handle.end_status)
    except Exception as exc:
        reason = environment_failure(exc)
        if reason is None:
            raise
        raise StoreFailed(f"run {handle.run_id} could not be ended: {reason}") from None


def _terminate_quietly(handle: Run, status: str) -> bool:
    """End the run with `status`; False when the store refuses (disk full, server gone): the
    error that stopped the run is the one to report."""
    try:
        handle.client.set_terminated(handle.run_id, status)
        return True
    except Exception:
        return False


NOTE_LIMIT = 8000  # MLflow cuts a tag value (the description is one) at 8,000 characters


PAD = "\u00a0"  # a no-break space: Markdown keeps it where it trims ordinary spaces


def padded_tables(markdown: str) -> str:
    """Markdown tables whose cells keep a space on each side in MLflow's UI, which renders
    description tables without cell padding ("0.6638 | 1" read "0.66381"). Separator rows,
    code blocks and text outside tables are left as they are."""
    out, fenced = [], False
    for line in markdown.split("\n"):
        fenced ^= line.lstrip().startswith("```")
        row = line.strip()
        if fenced or len(row) < 2 or not (row.startswith("|") and row.endswith("|")) \
                or set(row) <= set("|-: "):
            out.append(line)
            continue
        cells = re.split(r"(?<!\\)\|", row[1:-1])  # `\|` inside a cell is not a border
        out.append("|" + "|".join(f" {PAD}{c.strip()}{PAD} " for c in cells) + "|")
    return "\n".join(out)


def fit_note(markdown: str, limit: int = NOTE_LIMIT) -> str:
    """A description MLflow renders legibly (padded_tables) and keeps whole: an over-long one
    loses its middle, not its end (the results and the diagnosis come last; a long recipe
    description comes first)."""
    markdown = padded_tables(markdown)
    if len(markdown) <= limit:
        return markdown
    marker = f"\n\n… ({{}} characters cut: MLflow keeps {limit} in a description) …\n\n"
    head = 1000
    cut = len(markdown) - limit + len(marker.format(len(markdown)))  # the tail fills the rest
    return markdown[:head] + marker.format(cut) + markdown[head + cut:]


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
        all_tags[T.NOTE] = fit_note(description)
    try:
        created = c.create_run(exp_id, run_name=name, tags=all_tags)
    except Exception as exc:
        _refuse_unwritable(exc)
        raise
    return Run(c, created.info.run_id, exp_id)


def _refuse_unwritable(exc: Exception) -> None:
    """A store that cannot take a new run (read-only, disk full) is bad input: nothing has
    started yet."""
    from cnnexp.errors import BadInput, environment_failure

    reason = environment_failure(exc)
    if reason is not None:
        raise BadInput(f"cannot write to the tracking store {shown_uri()}: {reason}") from None


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
    """A handle on an existing run (full id or unique prefix), or BadInput saying why none:
    no such run, a prefix shared by several, or one too short to be safe."""
    from cnnexp.tracking.query import resolve_run_id

    c = client()
    return Run(c, *resolve_run_id(run_id, c))


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
