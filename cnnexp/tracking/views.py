"""MLflow runs tables that open on the numbers, one kind of run at a time.

The MLflow UI (3.x) restores a saved view from an experiment tag
`mlflow.sharedViewState.<key>` when a link carries `viewStateShareKey=<key>`: the search
filter, the sort order and the visible columns (in that order). A cnnexp experiment holds
several kinds of run (sanity checks, training runs, a study's stages and trials, an ablation's
arms and seeds), and one table of them all mixes a 1-epoch trial on 5,000 images with a
15-epoch final run. So each kind a reviewer compares gets its own view, its decisive columns
first (the metric, its noise, the diagnosis, the budget), within the first 1600 px:

- `cnnexp-train`: training runs by best validation accuracy, ± its standard error, test
  figure, diagnosis, epochs and subset;
- `cnnexp-trials`: a study's trials by the study's metric (written by the search, which knows
  its direction and space), with the stage, the trial's budget and the searched parameters;
- `cnnexp-arms`: an ablation's arms with mean ± std over seeds, Δ vs what each arm is
  compared with, p and the verdict (logged on each arm run when the table is made);
- `cnnexp`: every run, by best validation accuracy (the view of earlier versions).

`cnnexp ui` prints, per experiment, the link of each view whose kind of run it holds
(tracking/ui.experiment_links), in the "Model training" layout (query.runs_url)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cnnexp.tracking import tags as T

VIEW_KEY = "cnnexp"
SHARED_VIEW_TAG = "mlflow.sharedViewState."
TRAIN_VIEW, TRIALS_VIEW, ARMS_VIEW = "cnnexp-train", "cnnexp-trials", "cnnexp-arms"


def _column(kind: str, name: str) -> str:
    """MLflow's canonical column key: metrics.`val_acc`, params.`opt.lr`, tags.`diagnosis`."""
    return f"{kind}.`{name}`"


def metric(name: str) -> str:
    return _column("metrics", name)


def param(name: str) -> str:
    return _column("params", name)


def tag(name: str) -> str:
    return _column("tags", name)


def kind_filter(kind: T.Kind) -> str:
    """The runs-table search filter that keeps one kind of cnnexp run."""
    return f"tags.`{T.KIND}` = '{kind.value}'"


def view_state(sort: str, columns: Sequence[str], *, higher_is_better: bool = True,
               kind: T.Kind | None = None) -> dict:
    """The saved view: sorted by the metric `sort` (best first), `columns` shown in this order
    (MLflow groups metrics, params and tags and sorts each group by name; `columnOrder` puts
    the decisive columns first across the groups), only runs of `kind` when given."""
    columns = list(dict.fromkeys([metric(sort), *columns]))
    state = {"orderByKey": metric(sort), "orderByAsc": not higher_is_better,
             "selectedColumns": columns, "columnOrder": columns}
    if kind is not None:
        state["searchFilter"] = kind_filter(kind)
    return state


# Every run, best validation accuracy first (what `?viewStateShareKey=cnnexp` has opened since
# the first version; kept so older links still work).
DEFAULT_VIEW = view_state("best_val_acc", [
    metric("best_val_acc_se"), tag(T.DIAGNOSIS), param("train.epochs"), param("data.subset"),
    tag(T.KIND), metric("test_acc"), metric("seconds"), param("arch.model"), param("opt.lr")])

TRAIN_VIEW_STATE = view_state("best_val_acc", [
    metric("best_val_acc_se"), metric("test_acc"), metric("test_acc_se"), tag(T.DIAGNOSIS),
    param("train.epochs"), param("data.subset"),
    metric("best_epoch"), metric("seconds"), param("arch.model"), param("arch.width"),
    param("opt.optimizer"), param("opt.lr"), param("opt.weight_decay"),
    param("train.batch_size")], kind=T.Kind.TRAIN)

ARMS_VIEW_STATE = view_state("mean", [
    metric("std"), metric("delta_pp"), metric("p_value"), tag(T.VERDICT), param("change"),
    metric("n"), metric("diverged"), tag(T.ABLATION)], kind=T.Kind.ARM)


def trials_view(higher_is_better: bool, space: Sequence[str]) -> dict:
    """A study's trials: its metric's value (`objective`, best first) with the validation
    noise, the diagnosis, the stage and the trial's budget, then the searched parameters."""
    return view_state("objective", [
        metric("best_val_acc_se"), tag(T.DIAGNOSIS), param("search.stage"),
        param("train.epochs"), param("data.subset"), tag(T.STATE),
        *(param(p) for p in space), metric("trial_seconds")],
        higher_is_better=higher_is_better, kind=T.Kind.TRIAL)


def view_tags() -> dict[str, str]:
    """The experiment tags that hold the views every experiment gets when it is created (a
    search adds its trials view: search_view_tag)."""
    return {SHARED_VIEW_TAG + VIEW_KEY: json.dumps(DEFAULT_VIEW),
            SHARED_VIEW_TAG + TRAIN_VIEW: json.dumps(TRAIN_VIEW_STATE),
            SHARED_VIEW_TAG + ARMS_VIEW: json.dumps(ARMS_VIEW_STATE)}


def search_view_tag(higher_is_better: bool, space: Sequence[str]) -> dict[str, str]:
    return {SHARED_VIEW_TAG + TRIALS_VIEW: json.dumps(trials_view(higher_is_better, space))}


# which view shows which kind of run, in the order `cnnexp ui` lists them
KIND_VIEWS = ((T.Kind.TRAIN, TRAIN_VIEW, "training runs"),
              (T.Kind.TRIAL, TRIALS_VIEW, "search trials"),
              (T.Kind.ARM, ARMS_VIEW, "ablation arms"))
