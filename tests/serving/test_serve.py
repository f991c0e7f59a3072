"""Served by MLflow itself: the real `mlflow models serve` on the registered model (local
environment, loopback, a free port) answers a batch of images as `cnnexp predict` does. The
server is stopped at the end whatever happens."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.servers import free_port, serving

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@contextlib.contextmanager
def served(model_uri: str, tracking_uri: str, root: Path):
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    # MLflow starts `uvicorn` by name: the environment's bin folder must be on PATH, as it
    # is in an activated virtual environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1",
           "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with serving([str(mlflow), "models", "serve", "-m", model_uri, "--env-manager", "local",
                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                 f"http://127.0.0.1:{port}/ping", root / "serve.log", env):
        yield port


def test_mlflow_models_serve_answers_as_cnnexp_predict(trained) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from cnnexp.cli import app

    files = sorted(trained.images.glob("*.png"))[:32]
    x = np.stack([np.asarray(Image.open(f)) for f in files])[..., None]
    with served("models:/digits-cnn/1", trained.uri, trained.root) as port:
        body = json.dumps({"inputs": x.tolist()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())["predictions"]
    served_probs = np.array([[row[str(c)] for c in range(10)] for row in answer])
    os.environ["MLFLOW_TRACKING_URI"] = trained.uri
    res = CliRunner().invoke(app, ["predict", "models:/digits-cnn/1", *map(str, files),
                                   "--json", "--top", "10"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    preds = json.loads(res.stdout)["predictions"]
    ours = np.array([[next(t["probability"] for t in p["top"] if t["class"] == str(c))
                      for c in range(10)] for p in preds])
    assert served_probs.shape == (32, 10)
    assert np.allclose(served_probs, ours, atol=1e-6)
