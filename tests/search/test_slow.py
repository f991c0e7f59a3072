"""Searches with real worker processes and real signals (slow: each process imports torch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cnnexp.search.attrs import WORKER
from cnnexp.search.config import build_plan
from cnnexp.search.storage import counts, open_storage
from cnnexp.tracking.tags import KIND
from tests.signals import default_sigint

pytestmark = pytest.mark.slow
FAST = ["data.subset=300", "search.stages.coarse.epochs=1", "search.stages.fine.epochs=2",
        "search.confirm.seeds=2", "search.confirm.epochs=1"]


def study_name(overrides: list[str]) -> str:
    plan = build_plan("digits", overrides)
    return f"{plan.recipe_name}-{plan.fingerprint}"


def cnnexp(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnexp.cli", "search", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint,
                            env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db",
                                 "OMP_NUM_THREADS": "1"})


def stage_trials(cwd: Path, study: str, stage: str) -> list:
    try:
        storage = open_storage(str(cwd / "cnnexp-optuna.journal"))
        return optuna.load_study(study_name=f"{study}/{stage}", storage=storage).trials
    except KeyError:
        return []


def wait_for(cond, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_workers_share_a_study_and_optuna_reads_it(cli, workdir: Path, mlflow_client) -> None:
    res = cli("search", *FAST, "--trials", "coarse=6,fine=2", "--workers", "2", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert [(s["trials"], s["failed"]) for s in out["stages"]] == [(6, 0), (2, 0)]
    trials = stage_trials(workdir, out["study"], "coarse")
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    pids = {t.user_attrs[WORKER]["pid"] for t in trials}
    assert os.getpid() not in pids  # the trials ran in the spawned workers
    exp = mlflow_client.get_experiment_by_name(out["study"])
    runs = [r for r in mlflow_client.search_runs([exp.experiment_id])
            if r.data.tags.get(KIND) == "trial"]
    keys = [(r.data.tags["cnnexp.stage"], r.data.tags["cnnexp.trial"]) for r in runs]
    assert len(keys) == 8 and len(set(keys)) == 8 and all(r.info.status == "FINISHED" for r in runs)

    optuna_cli = Path(sys.executable).with_name("optuna")
    shown = subprocess.run([str(optuna_cli), "trials", "--study-name", f"{out['study']}/coarse",
                            "--storage", "cnnexp-optuna.journal", "-f", "json"],
                           capture_output=True, text=True, check=True, cwd=workdir)
    assert len(json.loads(shown.stdout)) == 6


def test_ctrl_c_with_workers_then_resume(workdir: Path) -> None:
    args = ["search.stages.coarse.epochs=2", "search.stages.fine.epochs=1"]
    study = study_name(args)
    proc = cnnexp(*args, "--trials", "coarse=6,fine=1", "--workers", "2", cwd=workdir)
    wait_for(lambda: sum(t.state.is_finished() for t in stage_trials(workdir, study, "coarse"))
             >= 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    c = counts(stage_trials(workdir, study, "coarse"))
    assert c.running == 0 and c.finished + c.waiting == 6  # nothing lost, nothing doubled

    again = cnnexp(*args, "--trials", "coarse=6,fine=1", "--resume", "--json", cwd=workdir)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    stages = json.loads(out)["stages"]
    assert [s["trials"] for s in stages] == [6, 1]
    trials = stage_trials(workdir, study, "coarse")
    counted = [t for t in trials if t.number not in
               {n for x in trials for n in x.system_attrs.get("retry_history", [])}]
    assert len(counted) == 6 and all(t.state != TrialState.RUNNING for t in trials)


def test_a_killed_worker_is_replaced_by_its_retry(workdir: Path) -> None:
    args = ["search.stages.coarse.epochs=3", "search.stages.fine.epochs=1"]
    study = study_name(args)
    proc = cnnexp(*args, "--trials", "coarse=4,fine=1", "--workers", "2", cwd=workdir)

    def running() -> list:
        return [t for t in stage_trials(workdir, study, "coarse")
                if t.state == TrialState.RUNNING and WORKER in t.user_attrs]

    wait_for(lambda: bool(running()), proc)
    victim = running()[0]
    os.kill(victim.user_attrs[WORKER]["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err  # the other worker finished every ticket
    trials = stage_trials(workdir, study, "coarse")
    c = counts(trials)
    assert (c.finished, c.retried, c.running, c.waiting) == (4, 1, 0, 0)
    assert trials[victim.number].user_attrs["cnnexp.reason"] == "worker died"
