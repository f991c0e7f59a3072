"""`cnnexp ui`: the MLflow UI for the same store the commands write to."""

from __future__ import annotations

import subprocess
import sys

from cnnexp.console import err
from cnnexp.tracking import query
from cnnexp.tracking.store import tracking_uri


def ui_command(host: str, port: int) -> list[str]:
    uri = tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]
    if not uri.startswith(("http://", "https://")):
        cmd += ["--backend-store-uri", uri]
    return cmd


def serve(host: str, port: int) -> int:
    uri = tracking_uri()
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
    exps = [(i, n) for i, n in query.experiments() if n != "Default"]
    lines = [f"  {name}: {query.runs_url(base, eid)}" for eid, name in exps[:limit]]
    return (["Runs tables:", *lines] if lines else []) + (
        [f"  ... and {len(exps) - limit} more"] if len(exps) > limit else [])
