"""Scale-out and faults against real stores (slow): several `cnnexp search` processes share one
study, as workers on several machines do, on PostgreSQL + a real `mlflow server`, and on the
single-host journal file; a worker SIGKILLed mid-trial is failed after the heartbeat grace period
and retried; 4 workers on one host with the default storage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from cnnexp.search.attrs import WORKER
from cnnexp.search.storage import counts, open_storage, worker_identity
from cnnexp.tracking.tags import KIND
from tests.servers import PASSWORD, Servers, servers

pytestmark = pytest.mark.slow
# tiny budgets on digits; lr capped so that no trial diverges (every trial run ends FINISHED)
FAST = ["data.subset=500", "search.stages.coarse.epochs=2", "search.stages.fine.epochs=2",
        "search.space.opt.lr.high=0.1", "search.confirm.seeds=2", "search.confirm.epochs=1"]
RUN_ID = "cnnexp.mlflow_run_id"


@pytest.fixture(scope="module")
def pg() -> Iterator[Servers]:
    with servers() as s:
        yield s


def search(*args: str, cwd: Path, tracking: str, wrap: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen([*wrap, sys.executable, "-m", "cnnexp.cli", "search", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": tracking,
                                 "OMP_NUM_THREADS": "1"})


def finish(procs: list[subprocess.Popen], timeout: float = 900) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def stage(storage: str, study: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=f"{study}/{name}",
                                 storage=open_storage(storage)).trials
    except KeyError:
        return []


def check_study(storage: str, study: str, expected: dict[str, int]) -> None:
    """Exact counts per stage, nothing left running or waiting, each stage set up once."""
    s = open_storage(storage)
    names = sorted(x.study_name for x in s.get_all_studies() if x.study_name.startswith(study))
    assert names == sorted([study, *(f"{study}/{n}" for n in expected)])
    for name, n in expected.items():
        trials = stage(storage, study, name)
        c = counts(trials)
        assert (c.requested, c.finished, c.failed, c.running, c.waiting) == (n, n, 0, 0, 0), name
        tickets = [t for t in trials if not t.system_attrs.get("retry_history")]
        assert len(tickets) == n  # the tickets were enqueued once, by one process


def check_mlflow(tracking: str, study: str, expected: dict[str, int]) -> list:
    """One parent run, one run per stage under it, one FINISHED run per counted trial under its
    stage; nothing left RUNNING. Returns the trial runs."""
    c = MlflowClient(tracking)
    exp = c.get_experiment_by_name(study)
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    kind = {k: [r for r in runs if r.data.tags.get(KIND) == k]
            for k in ("search", "stage", "trial")}
    (parent,) = kind["search"]
    assert parent.info.status == "FINISHED"
    stages = {r.data.tags["cnnexp.stage"]: r for r in kind["stage"]}
    assert len(kind["stage"]) == len(stages) == len(expected)  # each transition happened once
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in stages.values())
    for name, n in expected.items():
        trials = [r for r in kind["trial"] if r.data.tags["cnnexp.stage"] == name]
        finished = [r for r in trials if r.info.status == "FINISHED"]
        assert len(finished) == n, name
        assert len({r.data.tags["cnnexp.trial"] for r in finished}) == n
        assert all(r.data.tags["mlflow.parentRunId"] == stages[name].info.run_id for r in trials)
    return kind["trial"]


def no_secrets(tracking: str, study: str, outputs: list[tuple[int, str, str]]) -> None:
    for _, stdout, stderr in outputs:
        assert PASSWORD not in stdout and PASSWORD not in stderr
    c = MlflowClient(tracking)
    exp = c.get_experiment_by_name(study)
    for r in c.search_runs([exp.experiment_id], max_results=1000):
        assert PASSWORD not in repr(r.data.params) + repr(r.data.tags)


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_three_processes_share_one_study(backend: str, request, tmp_path: Path) -> None:
    """Three `cnnexp search` processes started at once on one study (the multi-machine set-up:
    same command, same --storage, same MLFLOW_TRACKING_URI)."""
    if backend == "postgresql":
        s: Servers = request.getfixturevalue("pg")
        storage, tracking = s.pg_url("optuna"), s.tracking_uri
    else:
        storage, tracking = str(tmp_path / "cnnexp-optuna.journal"), \
            f"sqlite:///{tmp_path / 'mlflow.db'}"
    study, expected = f"three-{backend}", {"coarse": 9, "fine": 3}
    args = [*FAST, "--study", study, "--storage", storage, "--trials", "coarse=9,fine=3"]
    outputs = finish([search(*args, "--json", cwd=tmp_path, tracking=tracking)
                      for _ in range(3)])
    for rc, _, stderr in outputs:
        assert rc == 0, stderr
        assert "Traceback" not in stderr and "locked" not in stderr.lower()
    check_study(storage, study, expected)
    workers = {t.user_attrs[WORKER]["pid"] for t in stage(storage, study, "coarse")}
    assert len(workers) >= 2  # the processes really shared the tickets
    check_mlflow(tracking, study, expected)
    # the three processes wrote the same result files in one folder: whole, not interleaved
    csv = pd.read_csv(tmp_path / "outputs" / "search" / study / "trials.csv")
    assert len(csv) == 12 and csv["counted"].all()
    if backend == "postgresql":
        no_secrets(tracking, study, outputs)
        assert json.loads(outputs[0][1])["storage"].endswith(
            f"cnnexp:***@127.0.0.1:{s.pg_port}/optuna")


def _unshare() -> list[str]:
    """Run the victim in its own pid namespace: the other workers cannot see its pid, as if it
    were on another machine, so only the heartbeat can tell that it died."""
    tool = shutil.which("unshare")
    if tool and subprocess.run([tool, "--pid", "--fork", "--mount-proc", "true"],
                               capture_output=True).returncode == 0:
        return [tool, "--pid", "--fork", "--mount-proc"]
    pytest.skip("cannot start a process in its own pid namespace (unshare) to stand in for "
                "a worker on another machine")


def test_sigkilled_remote_worker_is_failed_by_heartbeat_and_retried(pg: Servers,
                                                                    tmp_path: Path) -> None:
    storage, tracking, study = pg.pg_url("optuna"), pg.tracking_uri, "sigkill"
    args = ["data.subset=500", "search.stages.coarse.epochs=4", "search.stages.fine.epochs=1",
            "search.space.opt.lr.high=0.1", "--study", study, "--storage", storage,
            "--trials", "coarse=6,fine=2", "--heartbeat", "2"]  # grace period: 10 s
    victim = search(*args, cwd=tmp_path, tracking=tracking, wrap=_unshare())
    mine = worker_identity()["pidns"]

    def victims_trial() -> optuna.trial.FrozenTrial | None:
        for t in stage(storage, study, "coarse"):
            if t.state == TrialState.RUNNING and t.user_attrs.get(WORKER, {}).get("pidns") != mine:
                return t
        return None

    deadline = time.monotonic() + 300
    while victims_trial() is None:
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.2)
    others = [search(*args, "--json", cwd=tmp_path, tracking=tracking) for _ in range(2)]
    while True:  # mid-trial: read once and kill at once (a second read may find it finished)
        killed = victims_trial()
        if killed is not None and killed.intermediate_values:
            break
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)  # the worker and its namespace, at once
    victim.wait()
    outputs = finish(others)
    for rc, _, stderr in outputs:
        assert rc == 0, stderr
        assert "Traceback" not in stderr

    trials = stage(storage, study, "coarse")
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("retry_history") == [killed.number]]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["cnnexp.retry_reason"] == "worker died (no heartbeat)"
    c = counts(trials)
    assert (c.complete, c.retried, c.failed, c.running, c.waiting) == (6, 1, 0, 0, 0)
    check_study(storage, study, {"coarse": 6, "fine": 2})
    # the dead trial's MLflow run was ended FAILED by the worker that reaped it
    run = MlflowClient(tracking).get_run(dead.user_attrs[RUN_ID])
    assert run.info.status == "FAILED" and run.data.tags["cnnexp.reason"] == "worker died"
    trial_runs = check_mlflow(tracking, study, {"coarse": 6, "fine": 2})
    assert len(trial_runs) == 6 + 1 + 2  # the dead one is kept, FAILED, next to its retry
    no_secrets(tracking, study, outputs)
    csv = pd.read_csv(tmp_path / "outputs" / "search" / study / "trials.csv")
    row = csv[(csv["stage"] == "coarse") & (csv["trial"] == killed.number)].iloc[0]
    assert row["state"] == "fail" and not row["counted"]
    assert row["reason"] == "worker died (no heartbeat)"

    # re-running the command afterwards continues the finished study: nothing runs again
    ((rc, _, stderr),) = finish([search(*args, "--json", cwd=tmp_path, tracking=tracking)])
    assert rc == 0, stderr
    assert len(stage(storage, study, "coarse")) == len(trials)


def test_four_workers_on_one_host_with_the_default_storage(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ((rc, _, stderr),) = finish([search(*FAST, "--study", "four", "--workers", "4",
                                             "--trials", "coarse=8,fine=4", "--json",
                                             cwd=tmp_path, tracking=tracking)])
    assert rc == 0, stderr
    assert "lock" not in stderr.lower() and "Traceback" not in stderr
    assert (tmp_path / "cnnexp-optuna.journal").is_file()
    storage = str(tmp_path / "cnnexp-optuna.journal")
    check_study(storage, "four", {"coarse": 8, "fine": 4})
    pids = {t.user_attrs[WORKER]["pid"] for t in stage(storage, "four", "coarse")}
    assert len(pids) >= 2
    check_mlflow(tracking, "four", {"coarse": 8, "fine": 4})
