"""The held-out test split: kept out of every decision, read once by `train --test`."""

from __future__ import annotations

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.data.bundle import DataBundle
from cnnexp.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["data.subset=150", "train.epochs=2"]


def test_held_out_split_is_fixed_stratified_and_disjoint() -> None:
    a = build_data(load_recipe("digits", ["data.split_seed=0"]))
    b = build_data(load_recipe("digits", ["data.split_seed=7", "train.seed=3"]))
    ta, tb = a.test(), b.test()
    assert torch.equal(ta.x, tb.x) and torch.equal(ta.y, tb.y)  # seed-independent
    assert a.n_test == 359 and a.n_train + a.n_val + a.n_test == 1797
    counts = torch.bincount(ta.y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~20% of each class
    # no test image is also a training or validation image
    flat = lambda x: {bytes(v.numpy().tobytes()) for v in x}  # noqa: E731
    assert not flat(ta.x) & (flat(a.train_x) | flat(a.val_x))
    assert not torch.equal(a.val_y, b.val_y)  # the train/val split still follows its seed


def test_no_test_split_when_fraction_is_zero(cli) -> None:
    data = build_data(load_recipe("digits", ["data.test_fraction=0"]))
    assert data.n_test == 0 and data.n_train + data.n_val == 1797
    res = cli("train", *SMALL, "data.test_fraction=0", "--test", "--json", "--no-track")
    assert res.exit_code == 2 and "has no test split" in res.stderr


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any read of the test split fails the command that made it."""
    reads: list[str] = []

    def refuse(self: DataBundle):
        reads.append(self.name)
        raise AssertionError("the held-out test split was read")

    monkeypatch.setattr(DataBundle, "test", refuse)
    return reads


def test_decisions_never_read_the_test_split(cli, sealed: list[str]) -> None:
    res = cli("sanity", *SMALL, "--checks", "data,init-loss,overfit,lr-range", "--lr-steps",
              "30", "--json")
    assert res.exit_code in (0, 1), res.stderr
    res = cli("search", *SMALL, "search.stages.coarse.epochs=1", "search.stages.fine.epochs=1",
              "search.confirm.seeds=2", "search.confirm.epochs=1",
              "--trials", "2", "--json")
    assert res.exit_code == 0, res.stderr
    res = cli("ablate", *SMALL, "--seeds", "1", "--json")
    assert res.exit_code == 0, res.stderr
    res = cli("train", *SMALL, "reg.patience=1", "--json")  # early stopping and best epoch
    assert res.exit_code == 0, res.stderr
    assert sealed == []
    # the control: the final evaluation is the one door, and the seal holds it shut
    with pytest.raises(AssertionError, match="held-out test split was read"):
        cli("train", *SMALL, "--test", "--json")
    assert sealed == ["digits"]


def test_train_test_reports_and_logs_the_final_figure(cli, mlflow_client) -> None:
    res = cli("train", *SMALL, "--test", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    t = out["test"]
    assert t["test_images"] == 359 and 0 <= t["test_acc"] <= 1
    assert t["test_acc_se"] == pytest.approx((t["test_acc"] * (1 - t["test_acc"]) / 359) ** 0.5)
    assert t["weights"].startswith(f"best epoch {out['best_epoch']} of 2 by val_acc")
    run = mlflow_client.get_run(out["run_id"])
    assert run.data.metrics["test_acc"] == pytest.approx(t["test_acc"])
    assert run.data.tags["cnnexp.tested_weights"] == t["weights"]
    assert " 2ep n=150 seed=0" in run.info.run_name  # the budget tells runs apart
    m = run.data.metrics  # the validation figure carries its noise too, as a column
    a = m["best_val_acc"]
    n = int(run.data.params["val_images"])  # a constant of the run: a param, not a metric
    assert m["best_val_acc_se"] == pytest.approx(round((a * (1 - a) / n) ** 0.5, 4))
    assert not {"classes", "val_images"} & set(m)
    from cnnexp.diagnose.figures import render

    assert "test/confusion_matrix.png" in render(out["run_id"])  # drawn off the training path
    files = {a.path for a in mlflow_client.list_artifacts(out["run_id"], "test")}
    assert {"test/confusion_matrix.png", "test/confusion_matrix.csv"} <= files
    note = run.data.tags["mlflow.note.content"]
    assert "**Test**: test_acc" in note
    # the answer first, on screen when the run page opens: val with noise, test, diagnosis
    assert note.startswith(f"**Result**: best val_acc {a:.4f} ± ")
    assert f"test_acc {t['test_acc']:.4f} ± {t['test_acc_se']:.4f}" in note.splitlines()[0]
    assert f"diagnosis {run.data.tags['diagnosis']}" in note.splitlines()[0]
    # the budget this run had, beside the recipe's own description
    assert "This run: 2 epoch(s) on " in run.data.tags["mlflow.note.content"]

    # the experiment's report opens with where the routine stands: the test figure with its
    # noise, the steps not taken, and what to do next
    rep = cli("report", "--out", "r.html", "--no-log", "--json")
    assert rep.exit_code == 0, rep.stderr
    from pathlib import Path

    page = Path("r.html").read_text()
    summary = page[page.index("<h2>Summary</h2>"):page.index("Next step")]
    assert f"test_acc {t['test_acc']:.4f} ± {t['test_acc_se']:.4f} (n=359" in summary
    assert summary.count("not run") == 3  # sanity, search, ablation
    assert f"<b>Final: test_acc {t['test_acc']:.4f}" in summary  # the headline
    assert "cnnexp sanity" in page[page.index("Next step"):]


def test_refit_trains_on_train_and_val_and_tests_the_last_epoch(cli, mlflow_client) -> None:
    res = cli("train", "train.epochs=2", "--refit", "--test", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["test"]["weights"] == "last epoch 2 (no validation split)"
    assert out["val_acc"] is None and out["diagnosis"] == "unvalidated"
    run = mlflow_client.get_run(out["run_id"])
    assert run.data.tags["cnnexp.refit"] == "True" and "val_acc" not in run.data.metrics
    assert run.info.run_name.endswith("refit")
    # every non-test image trained: 1797 - 359 test images, minus the last partial batch
    assert out["images_per_sec"] > 0
    data = build_data(load_recipe("digits"))
    from cnnexp.final import merged_train_val

    merged = merged_train_val(data)
    assert merged.n_train == 1797 - 359 and merged.n_val == 0
