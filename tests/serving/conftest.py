"""One trained, tested, registered digits model shared by the serving tests (a real run in a
real SQLite store), and the test split written out as PNG files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Trained:
    root: Path
    uri: str  # the store
    run_id: str
    test_acc: float
    images: Path  # the test split as PNGs named INDEX_LABEL.png
    labels: list[int]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    import json

    import torch
    from PIL import Image
    from typer.testing import CliRunner

    from cnnexp.cli import app

    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # module-scoped, so pytest's monkeypatch fixture is not available: its context manager
    # restores the environment (the tests' own helpers set the tracking URI too)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            mp.setenv("CNNEXP_FIGURES", "on-demand")
            res = CliRunner().invoke(app, ["train", "train.epochs=3", "aug.tta=true", "--test",
                                           "--register", "digits-cnn", "--json"],
                                     catch_exceptions=False)
            assert res.exit_code == 0, res.stderr
            out = json.loads(res.stdout)
            from cnnexp.data import build_data
            from cnnexp.recipe import load_recipe

            held = build_data(load_recipe("digits")).test()
            images = root / "test-images"
            images.mkdir()
            for i, (x, y) in enumerate(zip(held.x, held.y, strict=True)):
                Image.fromarray(x[0].numpy()).save(images / f"{i:04d}_{int(y)}.png")
            yield Trained(root, uri, out["run_id"], out["test"]["test_acc"], images,
                          [int(y) for y in held.y])
    finally:
        torch.set_num_threads(threads)
