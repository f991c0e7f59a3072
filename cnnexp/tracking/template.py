"""A new SQLite tracking store copied from a migrated empty one instead of migrated again.

MLflow builds a new SQLite store by running its ~50 schema migrations: 3-5 s on a 2-core
machine, paid by a user's first command in every new folder (and by every test). The result
is the same file each time for one MLflow version, except the Default experiment's artifact
location (derived from the working folder). So the first store built is kept in the user's
cache as a template (one per MLflow version); later new stores are a file copy plus that one
row set the way MLflow would have set it. Anything unexpected falls back to MLflow's own way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from mlflow import MlflowClient

from cnnexp.files import user_cache_dir

TEMPLATE_ENV = "CNNEXP_STORE_TEMPLATE"  # "off" disables the template (MLflow migrates)


def template_path() -> Path | None:
    """Where this MLflow version's template lives; None when disabled or when MLflow would
    not build a plain store (workspaces on)."""
    import mlflow

    if os.environ.get(TEMPLATE_ENV, "").lower() in ("off", "0", "false"):
        return None
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true"):
        return None
    return user_cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"


def build(path: Path) -> None:
    """Create a migrated, empty MLflow store at `path` (not yet in place: the caller renames
    it), from the template when there is a usable one, else by MLflow (and keep a template)."""
    template = template_path()
    if template is not None and template.is_file():
        try:
            shutil.copyfile(template, path)
            _set_default_location(path)
            return
        except (OSError, sqlite3.Error, AttributeError):
            path.unlink(missing_ok=True)  # fall back to MLflow's own migration
    client = MlflowClient("sqlite:///" + str(path.absolute()))
    client.search_experiments(max_results=1)
    _dispose(client)
    if template is not None:
        _keep(path, template)


def _set_default_location(path: Path) -> None:
    """The Default experiment's artifact location as MLflow would write it for this store."""
    client = MlflowClient("sqlite:///" + str(path.absolute()))
    store = client._tracking_client.store
    location = str(store._get_artifact_location(0))
    _dispose(client)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                   (location,))
    db.close()


def _keep(built: Path, template: Path) -> None:
    """Save a copy as the template (atomically; never fatal: the store is already built)."""
    partial = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, partial)
        os.replace(partial, template)
    except OSError:
        partial.unlink(missing_ok=True)


def _dispose(client: MlflowClient) -> None:
    """Close the pooled connections to the file before it is copied or renamed."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()
