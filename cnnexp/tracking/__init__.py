"""The only door to MLflow.

    store   the tracking URI, the client, a run's lifecycle (create, attach, end)
    tags    every tag name cnnexp writes or reads, and the `Kind` of each run
    record  `tracked(kind, name, recipe=...)`: the one way a run is recorded
    query   reading runs back: records, paged searches, histories, artifacts
    ui      `cnnexp ui`: MLflow's UI on the same store
"""

from cnnexp.tracking.record import Recording, log_recipe, recipe_tags, reopened, tracked
from cnnexp.tracking.store import (
    Run,
    attach,
    client,
    end_if_running,
    end_run,
    experiment_id,
    require_run,
    run,
    run_status,
    start_run,
    tracking_uri,
)
from cnnexp.tracking.tags import Kind

__all__ = ["Kind", "Recording", "Run", "attach", "client", "end_if_running", "end_run",
           "experiment_id", "log_recipe", "recipe_tags", "reopened", "require_run", "run",
           "run_status", "start_run", "tracked", "tracking_uri"]
