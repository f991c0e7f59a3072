"""MLflow runs tables that open on the numbers.

The MLflow UI (3.x) restores a saved view from an experiment tag
`mlflow.sharedViewState.<key>` when a link carries `viewStateShareKey=<key>`: the sort order
and the visible columns. cnnexp writes one such view per experiment when it creates it —
sorted by best validation accuracy, with the metrics, the key recipe fields, the diagnosis and the
run's kind as columns — and the runs-table links it prints (`cnnexp ui`, reports) open it, in
the "Model training" view rather than the GenAI one (query.runs_url).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mlflow import MlflowClient

from cnnexp.tracking import tags as T

VIEW_KEY = "cnnexp"
SHARED_VIEW_TAG = "mlflow.sharedViewState."


def _column(kind: str, name: str) -> str:
    """MLflow's canonical column key: metrics.`val_acc`, params.`opt.lr`, tags.`diagnosis`."""
    return f"{kind}.`{name}`"


def view_state(metric: str, *, higher_is_better: bool = True, params: Sequence[str] = (),
               metrics: Sequence[str] = (), tags: Sequence[str] = ()) -> dict:
    """The saved view: sorted by `metric` (best first), with these columns shown."""
    columns = [_column("metrics", m) for m in dict.fromkeys([metric, *metrics])]
    columns += [_column("params", p) for p in params]
    columns += [_column("tags", t) for t in dict.fromkeys([T.DIAGNOSIS, *tags, T.KIND])]
    return {"orderByKey": _column("metrics", metric), "orderByAsc": not higher_is_better,
            "selectedColumns": columns}


# What a cnnexp experiment's runs table shows: best validation accuracy first, the metrics and
# recipe fields that differ between runs, the verdict and the kind of run.
DEFAULT_VIEW = view_state("best_val_acc", metrics=("val_acc", "val_loss", "test_acc", "seconds"),
                          params=("arch.model", "opt.lr", "opt.weight_decay", "train.epochs"))


def view_tags() -> dict[str, str]:
    """The experiment tag that holds the view (set when the experiment is created)."""
    return {SHARED_VIEW_TAG + VIEW_KEY: json.dumps(DEFAULT_VIEW)}


def has_view(client: MlflowClient, experiment_id: str) -> bool:
    return SHARED_VIEW_TAG + VIEW_KEY in client.get_experiment(experiment_id).tags
