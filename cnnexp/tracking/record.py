"""One way to record a run: `tracked(kind, name, recipe=...)`.

Every kind of run — training, sanity check, search trial, ablation seed — opens the same
context: it tags the kind, the recipe's components and the device, logs the recipe (params and
`recipe.yaml`) and the dataset, and hands back a `Recording` whose `callbacks()` log each
epoch's metrics and, when `fit` ends, the outcome (summary metrics, status, reason, the
learning-curve diagnosis; FAILED when training diverged). With tracking off the same calls do
nothing, so callers never branch on it.

Per-epoch metrics are written by a background thread (MetricWriter): a store commit costs
~5-10 ms of Python and SQLite work, per epoch of every run, trial and seed; the epoch loop
goes on meanwhile. Everything is written before the run's outcome is (`on_fit_end`), before
a checkpoint is saved, and before the run ends, however the block ends.
"""

from __future__ import annotations

import hashlib
import math
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.noise import binomial_se
from cnnexp.tracking import store
from cnnexp.tracking import tags as T
from cnnexp.tracking.tags import Kind

# a finished fit's verdict (the diagnosis; its `.diagnosis` label is the run's tag)
Judge = Callable[["FitResult"], Any]

if TYPE_CHECKING:
    from cnnexp.data.bundle import DataBundle
    from cnnexp.engine.loop import FitResult
    from cnnexp.schema import Recipe


class Recording:
    """A run being recorded, or nothing at all (`run` None) when tracking is off."""

    def __init__(self, run: store.Run | None) -> None:
        self.run = run
        self.writer = MetricWriter(run) if run is not None else None
        self._judged: tuple[Any, Any] | None = None  # (result, the judge's verdict on it)

    @property
    def active(self) -> bool:
        return self.run is not None

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run else None

    @property
    def experiment_id(self) -> str | None:
        return self.run.experiment_id if self.run else None

    def callbacks(self, judge: Judge | None = None) -> list[Callback]:
        """Per-epoch metrics and the outcome of `fit`, for the engine's callback list. `judge`
        reads the finished fit (the caller's learning-curve diagnosis: tracking records it but
        does not know how to make it); its verdict is tagged with the outcome and kept for
        `judged`, so it is computed once."""
        if self.run is None or self.writer is None:
            return []
        return [EpochLogger(self.writer), OutcomeLogger(self.run, self.writer, judge, self)]

    def judged(self, result: FitResult, judge: Judge) -> Any:
        """The judge's verdict on `result`: the one recorded with the outcome, else made now
        (tracking off)."""
        if self._judged is not None and self._judged[0] is result:
            return self._judged[1]
        return judge(result)

    def flush(self) -> None:
        """Wait until the epochs' metrics are in the store (raises the store's error if one
        failed)."""
        if self.writer is not None:
            self.writer.flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.run:
            self.run.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.run:
            self.run.log_metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.run:
            self.run.set_tags(tags)

    def describe(self, markdown: str) -> None:
        if self.run:
            self.run.describe(markdown)

    def log_text(self, text: str, path: str) -> None:
        if self.run:
            self.run.log_text(text, path)

    def log_figure(self, figure: Any, path: str) -> None:
        if self.run:
            self.run.log_figure(figure, path)

    def log_artifact(self, local_path: str, folder: str | None = None) -> None:
        if self.run:
            self.run.log_artifact(local_path, folder)

    def fail(self) -> None:
        """End FAILED rather than FINISHED: the run ended badly but cleanly."""
        if self.run:
            self.run.fail()


class MetricWriter:
    """Writes metrics to a run from a background thread, in the order given. `flush()` waits
    for everything submitted; a store error is raised by the next `submit` or `flush`."""

    def __init__(self, run: store.Run) -> None:
        self.run = run
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, metrics: Mapping[str, float], step: int) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="cnnexp-metrics",
                                            daemon=True)
            self._thread.start()
        self._queue.put((dict(metrics), step))

    def flush(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after a failure the rest is dropped; flush reports it
                try:
                    self.run.log_metrics(*item)
                except BaseException as exc:  # handed to the training thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class EpochLogger(Callback):
    """Per-epoch metrics in one batched request per epoch (never one request per step),
    written in the background (MetricWriter)."""

    def __init__(self, writer: MetricWriter) -> None:
        self.writer = writer

    def on_epoch_end(self, state: FitState, metrics: dict[str, float]) -> None:
        step = int(metrics["epoch"])
        self.writer.submit({k: v for k, v in metrics.items() if k != "epoch"}, step=step)


class OutcomeLogger(Callback):
    """The data's size at the start; how `fit` ended: summary metrics, status/reason/diagnosis
    tags, FAILED if diverged (after the epochs' metrics are written)."""

    def __init__(self, run: store.Run, writer: MetricWriter | None = None,
                 judge: Judge | None = None, recording: Recording | None = None) -> None:
        self.run, self.writer, self.judge, self.recording = run, writer, judge, recording

    def on_fit_start(self, state: FitState) -> None:
        # what a later reading of the curves needs: chance level (1/classes) and the noise of
        # a validation accuracy (its size). Params, not metrics: constants of the run, which
        # as metrics would open its metrics tab on single-value bars before the curves
        self.run.log_params({"classes": state.data.num_classes,
                             "val_images": state.data.n_val})

    def on_fit_end(self, state: FitState, result: FitResult) -> None:
        if self.writer is not None:
            self.writer.flush()
        tags = {T.STATUS: result.status, T.REASON: result.reason}
        if self.judge is not None:
            verdict = self.judge(result)
            if self.recording is not None:
                self.recording._judged = (result, verdict)
            tags[T.DIAGNOSIS] = getattr(verdict, "diagnosis", verdict)
        acc, n = result.best_val_acc, state.data.n_val
        # its noise beside it, as a column the runs table can show: the binomial standard
        # error of an accuracy measured on n images
        noise = ({"best_val_acc_se": binomial_se(acc, n)}
                 if n and acc is not None and math.isfinite(acc) and 0 <= acc <= 1 else {})
        self.run.log_batch(
            metrics={"best_val_acc": acc, **noise, "seconds": result.seconds,
                     "images_per_sec": result.images_per_sec, "params": result.params,
                     "best_epoch": result.best_epoch},
            tags=tags)
        if result.status == "diverged":
            self.run.fail()


def recipe_tags(recipe: Recipe) -> dict[str, str]:
    return {T.component(group): component_label(recipe, group, name)
            for group, name in recipe.defaults.items()} | {T.RECIPE: recipe.name}


def component_label(recipe: Recipe, group: str, name: str) -> str:
    """The component's name and what the recipe changed in it: `none + flip=True, translate=1`.
    A tuned best.yaml keeps its start recipe's components, so the name alone read `aug: none`
    on a run trained with flips."""
    from pydantic import ValidationError

    from cnnexp.errors import BadInput
    from cnnexp.recipe import component_values

    current = getattr(recipe, group)
    try:
        base = type(current).model_validate(component_values(group, name)).model_dump()
    except (BadInput, ValidationError, OSError):  # gone or changed since: the name is all
        return name
    changed = [f"{k}={_short(v)}" for k, v in current.model_dump().items()
               if k != "name" and base.get(k) != v]
    return name + (" + " + ", ".join(changed) if changed else "")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def log_recipe(run: store.Run, recipe: Recipe) -> None:
    from cnnexp.recipe import to_yaml

    run.log_params(recipe.flat())
    run.log_text(to_yaml(recipe), "recipe.yaml")


def log_dataset(run: store.Run, data: DataBundle, context: str = "train") -> None:
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    source = CodeDatasetSource(tags={"source": data.source})
    ds = MetaDataset(source=source, name=data.name, digest=dataset_digest(data))
    run.client.log_inputs(run.run_id, [DatasetInput(
        ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])])


def dataset_digest(data: DataBundle) -> str:
    h = hashlib.sha256(data.source.encode())
    if data.in_memory:
        assert data.train_x is not None and data.train_y is not None
        h.update(data.train_y.cpu().numpy().tobytes())
        h.update(data.train_x[:512].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@contextmanager
def tracked(kind: Kind, name: str, *, enabled: bool = True, experiment: str | None = None,
            parent: Recording | store.Run | None = None, recipe: Recipe | None = None,
            data: DataBundle | None = None, device: Any = None,
            tags: Mapping[str, Any] | None = None,
            description: str | None = None) -> Iterator[Recording]:
    """Record one run of `kind` (see the module docstring); a child of `parent` when given,
    else in `experiment` (default: the recipe's name). Ends FINISHED, FAILED on an exception
    or `fail()`, KILLED on Ctrl-C."""
    parent_run = parent.run if isinstance(parent, Recording) else parent
    if not enabled or (isinstance(parent, Recording) and parent_run is None):
        yield Recording(None)
        return
    all_tags: dict[str, Any] = {T.KIND: kind.value}
    if recipe is not None:
        all_tags |= recipe_tags(recipe)
    if device is not None:
        all_tags[T.DEVICE] = str(device)
    all_tags |= dict(tags or {})
    exp = experiment or (recipe.name if recipe is not None else "cnnexp")
    with store.run(exp, name, parent=parent_run, tags=all_tags,
                   description=description) as run:
        if recipe is not None:
            log_recipe(run, recipe)
        if data is not None:
            log_dataset(run, data)
        with _flushed(Recording(run)) as rec:
            yield rec


@contextmanager
def reopened(run_id: str) -> Iterator[Recording]:
    """Continue recording into an existing run (`cnnexp train --resume`)."""
    with store.reopen(run_id) as run, _flushed(Recording(run)) as rec:
        yield rec


@contextmanager
def _flushed(rec: Recording) -> Iterator[Recording]:
    """The background metrics are written before the run ends; when the block failed, its
    error is the one to report, not a store error from the flush."""
    try:
        yield rec
    finally:
        failing = sys.exc_info()[1] is not None
        try:
            rec.flush()
        except Exception:
            if not failing:
                raise
