"""`cnnexp train --resume RUN_ID` after SIGKILL / SIGINT ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.signals import default_sigint

ARGS = ["train", "train.epochs=8", "train.checkpoint_seconds=0", "--json", "--device", "cpu"]


def _start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnexp.cli", *ARGS], cwd=workdir,
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


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
    # one line: no MLflow download progress bar before it
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


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


def _interrupted_run(epochs: int = 4, stop_after: int = 2) -> str:
    """A tracked run stopped by Ctrl-C after `stop_after` epochs, with its checkpoint (the
    state `cnnexp train --resume` starts from)."""
    import torch

    from cnnexp.engine import Callback
    from cnnexp.recipe import load_recipe
    from cnnexp.train import train

    class CtrlC(Callback):
        def on_epoch_end(self, state, metrics):
            if state.epoch == stop_after:
                raise KeyboardInterrupt

    recipe = load_recipe("digits", ["data.subset=200", f"train.epochs={epochs}",
                                    "train.checkpoint_seconds=0"])
    seen: list[str] = []

    class RunId(Callback):
        def on_fit_start(self, state):
            from cnnexp.tracking import store

            runs = store.client().search_runs(
                [store.experiment_id("digits")], order_by=["start_time DESC"], max_results=1)
            seen.append(runs[0].info.run_id)

    with pytest.raises(KeyboardInterrupt):
        train(recipe, device=torch.device("cpu"), callbacks=[RunId(), CtrlC()])
    return seen[0]


def test_resume_takes_a_unique_prefix_and_names_an_ambiguous_one(cli, workdir: Path,
                                                                  mlflow_client) -> None:
    run_id = _interrupted_run()
    exp_id = mlflow_client.get_run(run_id).info.experiment_id
    # a second run whose id shares the first 7 characters (ids are random: make one)
    twin = run_id[:7] + ("0" if run_id[7] != "0" else "1") + run_id[8:]
    import sqlite3

    from mlflow.entities import RunStatus

    mlflow_client.set_terminated(mlflow_client.create_run(exp_id, run_name="twin").info.run_id,
                                 RunStatus.to_string(RunStatus.FINISHED))
    with sqlite3.connect(workdir / "mlflow.db") as db:  # give it the shared prefix
        newest = db.execute("select run_uuid from runs where name='twin'").fetchone()[0]
        for table in ("runs", "tags", "latest_metrics", "metrics", "params"):
            db.execute(f"update {table} set run_uuid=? where run_uuid=?", (twin, newest))
    res = cli("train", "--resume", run_id[:7])
    assert res.exit_code == 2 and f"run id prefix '{run_id[:7]}' is ambiguous: matches" in res.stderr
    assert run_id in res.stderr and twin in res.stderr
    short = cli("train", "--resume", run_id[:4])
    assert short.exit_code == 2 and "a prefix needs at least 6 characters" in short.stderr
    assert mlflow_client.get_run(run_id).info.status == "KILLED"  # refused: untouched
    res = cli("train", "--resume", run_id[:8], "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["run_id"] == run_id and res.json()["epochs"] == 4
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"


def test_resume_is_refused_while_a_live_process_holds_the_run(cli, workdir: Path,
                                                              mlflow_client) -> None:
    """The lease names a live process on this host: refused in one line, the run untouched;
    once that process is gone its lease is stale and the resume goes ahead."""
    import socket

    from cnnexp.tracking import tags as T

    run_id = _interrupted_run()
    holder = subprocess.Popen(["sleep", "120"])
    try:
        mlflow_client.set_tag(run_id, T.LEASE,
                              f"{socket.gethostname()} {holder.pid} abc123 {time.time():.0f}")
        before = mlflow_client.get_metric_history(run_id, "val_loss")
        res = cli("train", "--resume", run_id, "--json")
        assert res.exit_code == 2, res.stderr
        assert (f"run {run_id} is being trained by another process (pid {holder.pid} on "
                in res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and res.json()["exit_code"] == 2
        assert mlflow_client.get_run(run_id).info.status == "KILLED"
        assert mlflow_client.get_metric_history(run_id, "val_loss") == before
    finally:
        holder.kill()
        holder.wait()
    res = cli("train", "--resume", run_id, "--json")
    assert res.exit_code == 0, res.stderr
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and T.LEASE not in run.data.tags  # released


@pytest.mark.slow
def test_two_resumes_at_once_one_is_refused(cli, mlflow_client, workdir: Path) -> None:
    """Two real `cnnexp train --resume RUN_ID` started together: one trains, the other is
    refused in one line (exit 2), and every epoch is logged once."""
    proc = _start(workdir)
    ckpt = _wait_for_checkpoint(workdir, proc, min_epoch=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run_id = ckpt.parents[2].name
    cmd = [sys.executable, "-m", "cnnexp.cli", "train", "--resume", run_id, "--json",
           "--device", "cpu"]
    procs = [subprocess.Popen(cmd, cwd=workdir, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "is being trained by another process" in refused
    assert len(refused.strip().splitlines()) == 1
    steps = [m.step for m in mlflow_client.get_metric_history(run_id, "val_loss")]
    assert sorted(steps) == list(range(1, 9))
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"


class _StopAfterLastEpoch:
    """Interrupts between the last epoch and the run's recorded outcome (what a Ctrl-C or a
    kill in that window does)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None

    def on_fit_end(self, state, result) -> None:
        raise KeyboardInterrupt


def _interrupted_after_training(workdir: Path, epochs: int = 3) -> str:
    import torch

    from cnnexp.recipe import load_recipe
    from cnnexp.train import train

    recipe = load_recipe("digits", [f"train.epochs={epochs}", "train.checkpoint_seconds=0",
                                    "data.subset=300"])
    with pytest.raises(KeyboardInterrupt):
        train(recipe, device=torch.device("cpu"), test=True, callbacks=[_StopAfterLastEpoch()])
    [ckpt] = workdir.glob("mlruns/*/*/artifacts/checkpoints/last.pt")
    return ckpt.parents[2].name


def test_a_run_stopped_after_its_last_epoch_keeps_its_checkpoint_and_resumes(
        cli, mlflow_client, workdir: Path, one_thread) -> None:
    run_id = _interrupted_after_training(workdir)
    assert mlflow_client.get_run(run_id).info.status == "KILLED"
    res = cli("train", "--resume", run_id, "--test", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["epochs"] == 3 and 0 < out["test"]["test_acc"] <= 1
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and "test_acc" in run.data.metrics
    assert not list(workdir.glob("mlruns/*/*/artifacts/checkpoints/last.pt"))  # then freed


def test_a_run_left_running_without_a_checkpoint_is_ended_failed(cli, mlflow_client,
                                                                 workdir: Path) -> None:
    from cnnexp import tracking
    from cnnexp.tracking import Kind

    # what SIGKILL before the first checkpoint leaves: a RUNNING run with its recipe only
    run = tracking.start_run("digits", "killed early", tags={"cnnexp.kind": Kind.TRAIN.value})
    run.log_text("name: digits\n", "recipe.yaml")
    res = cli("train", "--resume", run.run_id, "--json")
    assert res.exit_code == 2
    assert "has no checkpoint" in res.stderr and "ended FAILED" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    after = mlflow_client.get_run(run.run_id)
    assert after.info.status == "FAILED"
    assert after.data.tags["cnnexp.reason"].startswith("not resumable: run")
    # once ended, a second try says so without changing it again
    again = cli("train", "--resume", run.run_id)
    assert again.exit_code == 2 and "ended FAILED" not in again.stderr


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "other-arch"])
def test_a_damaged_checkpoint_is_one_line_and_exit_2(cli, mlflow_client, workdir: Path,
                                                     one_thread, damage: str) -> None:
    run_id = _interrupted_after_training(workdir)
    [ckpt] = workdir.glob(f"mlruns/*/{run_id}/artifacts/checkpoints/last.pt")
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "random":
        ckpt.write_bytes(os.urandom(5000))
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:  # the run's recipe.yaml edited to another width: the weights no longer fit
        [recipe] = workdir.glob(f"mlruns/*/{run_id}/artifacts/recipe.yaml")
        recipe.write_text(recipe.read_text().replace("width: 32", "width: 16"))
    res = cli("train", "--resume", run_id, "--json")
    assert res.exit_code == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    expected = "does not fit the model" if damage == "other-arch" else "is unreadable"
    assert expected in lines[0]
