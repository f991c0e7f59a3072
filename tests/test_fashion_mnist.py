"""End to end on real data: Fashion-MNIST from Debian's dataset-fashion-mnist package
(installed by .ci/run; skipped with the reason elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
                       reason="Debian's dataset-fashion-mnist is not installed "
                              "(apt-get install dataset-fashion-mnist; .ci/run installs it)"),
]


def test_train_fashion_mnist_subset_and_final_test_figure(cli, mlflow_client) -> None:
    """The shipped recipe on real files, a 3,000-image subset for 2 epochs, then the official
    10,000-image test split."""
    res = cli("train", "fashion_mnist", "data.subset=3000", "train.epochs=2", "--test",
              "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["test"]["test_images"] == 10_000
    assert out["test"]["test_split"] == "official test set"
    assert out["test"]["test_acc"] > 0.65  # chance is 0.10; a 3k-image subset reaches ~0.75
    assert out["test"]["test_acc_se"] < 0.005
    run = mlflow_client.get_run(out["run_id"])
    assert run.data.tags["cnnexp.data"] == "fashion_mnist + subset=3000"  # what was changed
    assert run.data.metrics["test_acc"] == pytest.approx(out["test"]["test_acc"])


def test_sanity_passes_on_fashion_mnist(cli) -> None:
    res = cli("sanity", "fashion_mnist", "data.subset=2000", "--json")
    assert res.exit_code == 0, res.stderr
    checks = {c["name"]: c["status"] for c in res.json()["checks"]}
    assert "fail" not in checks.values(), checks
