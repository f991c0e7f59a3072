"""One signal policy for every command (issue 24 items 5-7): SIGTERM and SIGHUP stop a command
the way Ctrl-C does — its runs end KILLED and resumable, --json still prints one object — and
it exits 128 + the signal's number (143, 129; 130 for Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.signals import default_sigint


def _start(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnexp.cli", *args, "--json"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint,
                            env={**os.environ, "OMP_NUM_THREADS": "1",
                                 "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db"})


def _wait(cond, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _statuses(workdir: Path) -> list[str]:
    c = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    exps = [e.experiment_id for e in c.search_experiments()]
    return [r.info.status for r in c.search_runs(exps)]


def _stopped(proc: subprocess.Popen, sig: signal.Signals) -> dict:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err, err
    [line] = out.strip().splitlines()  # exactly one JSON object
    obj = json.loads(line)
    assert obj == {"error": f"stopped by {sig.name}", "exit_code": 128 + sig}
    return obj


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_train_stops_killed_and_resumable(workdir: Path, sig: signal.Signals) -> None:
    proc = _start(workdir, "train", "train.epochs=40", "train.checkpoint_seconds=0")
    _wait(lambda: any(workdir.glob("mlruns/*/*/artifacts/checkpoints/last.pt")), proc)
    _stopped(proc, sig)
    assert _statuses(workdir) == ["KILLED"]  # not RUNNING with its lease
    [ckpt] = workdir.glob("mlruns/*/*/artifacts/checkpoints/last.pt")
    resumed = subprocess.run([sys.executable, "-m", "cnnexp.cli", "train", "--resume",
                              ckpt.parents[2].name, "--json"], cwd=workdir, capture_output=True,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                             "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db"})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 40
    assert _statuses(workdir) == ["FINISHED"]


@pytest.mark.slow
def test_ablate_sigterm_ends_every_run_and_resume_finishes(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(
        "baseline: digits\nmode: leave-one-out\nseeds: 2\noverrides: {train.epochs: 4}\n"
        "arms:\n  no wd: {opt.weight_decay: 0}\n  no bn: {arch.norm: none}\n")
    proc = _start(workdir, "ablate", "--spec", "spec.yaml")
    _wait(lambda: _statuses(workdir).count("FINISHED") >= 2, proc)  # mid-ablation
    _stopped(proc, signal.SIGTERM)
    assert "RUNNING" not in _statuses(workdir)
    again = subprocess.run([sys.executable, "-m", "cnnexp.cli", "ablate", "--spec", "spec.yaml",
                            "--resume", "--json"], cwd=workdir, capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1",
                                "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db"})
    assert again.returncode == 0, again.stderr
    assert len(json.loads(again.stdout)["rows"]) == 3
    assert "RUNNING" not in _statuses(workdir)


def test_search_sighup_is_a_clean_stop(workdir: Path) -> None:
    proc = _start(workdir, "search", "search.stages.coarse.epochs=3", "--trials", "coarse=20,fine=1")
    _wait(lambda: "FINISHED" in _statuses(workdir), proc)  # a trial has finished
    _stopped(proc, signal.SIGHUP)
    assert "RUNNING" not in _statuses(workdir)
