"""`cnnexp ui` serves the MLflow UI for the same store `cnnexp train` writes to."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


@pytest.mark.slow
def test_ui_serves_the_runs_train_wrote(cli, workdir: Path) -> None:
    out = cli("train", "train.epochs=1", "--json").json()
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.cli", "ui", "--port", str(port)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                status, page = _get(base + "/")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "MLflow UI did not start"
                time.sleep(0.5)
        assert status == 200 and b"<html" in page.lower()
        req = urllib.request.Request(
            base + "/ajax-api/2.0/mlflow/runs/get?run_id=" + out["run_id"])
        with urllib.request.urlopen(req, timeout=10) as resp:
            run = json.loads(resp.read())["run"]
        assert run["info"]["run_id"] == out["run_id"]
        assert run["info"]["experiment_id"] == out["experiment_id"]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
