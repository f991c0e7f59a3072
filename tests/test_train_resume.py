"""`cnnexp train --resume RUN_ID` after SIGKILL / SIGINT ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["train", "train.epochs=8", "train.checkpoint_seconds=0", "--json", "--device", "cpu"]


def _start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnexp.cli", *ARGS], cwd=workdir,
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(workdir: Path, proc: subprocess.Popen, min_epoch: int) -> Path:
    import torch

    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, "training finished before it could be interrupted"
        for ckpt in workdir.glob("mlruns/*/*/artifacts/checkpoints/last.pt"):
            try:
                if torch.load(ckpt, weights_only=True)["epoch"] >= min_epoch:
                    return ckpt
            except (EOFError, RuntimeError):
                pass  # never happens with the atomic rename, but don't fail on a race
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_run_resumes_to_identical_metrics(cli, mlflow_client, workdir: Path,
                                                      sig: signal.Signals) -> None:
    reference = cli(*ARGS).json()
    proc = _start(workdir)
    ckpt = _wait_for_checkpoint(workdir, proc, min_epoch=2)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    run_id = ckpt.parents[2].name
    status = mlflow_client.get_run(run_id).info.status
    assert status == ("KILLED" if sig == signal.SIGINT else "RUNNING")
    res = cli("train", "--resume", run_id, "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["run_id"] == run_id and out["epochs"] == 8
    for key in ("train_loss", "val_loss", "val_acc", "best_val_acc"):
        assert out[key] == pytest.approx(reference[key], rel=1e-6, abs=1e-9), key
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = {m.step for m in mlflow_client.get_metric_history(run_id, "val_loss")}
    assert steps == set(range(1, 9))


def test_resume_unknown_run_is_bad_input(cli) -> None:
    cli("train", "train.epochs=1", "--json")  # make sure the store exists
    res = cli("train", "--resume", "0123456789abcdef", "--json")
    assert res.exit_code == 2 and "no run '0123456789abcdef'" in res.stderr


def test_resume_with_overrides_is_bad_input(cli) -> None:
    res = cli("train", "opt.lr=0.1", "--resume", "abc")
    assert res.exit_code == 2 and "--resume takes no recipe" in res.stderr


def test_finished_short_run_has_no_checkpoint_to_resume(cli) -> None:
    out = cli("train", "train.epochs=1", "--json").json()
    res = cli("train", "--resume", out["run_id"])
    assert res.exit_code == 2 and "has no checkpoint" in res.stderr


def test_checkpoint_loads_weights_only_and_restores_state(workdir: Path) -> None:
    """In-process: a checkpoint taken mid-run restores to the same continuation."""
    from cnnexp.data import build_data
    from cnnexp.engine import Callback, fit
    from cnnexp.engine.checkpoint import capture, load, save
    from cnnexp.recipe import load_recipe

    recipe = load_recipe("digits", ["data.subset=300", "train.epochs=4", "reg.ema=0.9",
                                    "aug=mixup"])
    data = build_data(recipe)
    path = workdir / "ck.pt"

    class SaveAfter2(Callback):
        def on_epoch_end(self, state, metrics):
            if state.epoch == 2:
                save(capture(state), path)

    full = fit(recipe, data=data, device="cpu", callbacks=[SaveAfter2()])
    resumed = fit(recipe, data=data, device="cpu", resume=load(path))
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    assert resumed.best_epoch == full.best_epoch
