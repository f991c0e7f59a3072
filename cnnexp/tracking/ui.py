"""`cnnexp ui`: the MLflow UI for the same store the commands write to."""

from __future__ import annotations

import os
import subprocess
import sys

from cnnexp.console import err


def store_uri() -> str:
    """Same resolution as tracking.tracking_uri(), without importing mlflow."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def ui_command(host: str, port: int) -> list[str]:
    uri = store_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]
    if not uri.startswith(("http://", "https://")):
        cmd += ["--backend-store-uri", uri]
    return cmd


def serve(host: str, port: int) -> int:
    uri = store_uri()
    if uri.startswith(("http://", "https://")):
        err.print(f"MLflow tracking server at {uri}: open it in a browser.")
        return 0
    err.print(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    try:
        links = experiment_links(f"http://{host}:{port}")
    except Exception:  # links are a convenience; the server reports a broken store itself
        links = []
    for line in links:
        err.print(line, highlight=False, soft_wrap=True)
    try:
        return subprocess.call(ui_command(host, port))
    except KeyboardInterrupt:
        return 0


def experiment_links(base: str, limit: int = 8) -> list[str]:
    """Direct links to each experiment's runs table: MLflow 3.17 opens experiments on a GenAI
    overview unless the link asks for its "Model training" view."""
    from cnnexp import tracking

    exps = [(i, n) for i, n in tracking.experiments() if n != "Default"]
    lines = [f"  {name}: {tracking.runs_url(base, eid)}" for eid, name in exps[:limit]]
    return (["Runs tables:", *lines] if lines else []) + (
        [f"  ... and {len(exps) - limit} more"] if len(exps) > limit else [])
