"""Tickets, exact counts and dead-worker recovery on a real Optuna journal file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cnnexp.search.attrs import WORKER
from cnnexp.search.storage import (
    Stage,
    add_tickets,
    counts,
    ensure_study,
    open_storage,
    worker_alive,
    worker_identity,
)


def new_stage(path: Path, n: int) -> Stage:
    storage = open_storage(str(path))
    study, created = ensure_study(storage, "s/coarse", "maximize", lambda s: add_tickets(s, n))
    assert created
    return Stage(storage, study)


def test_second_ensure_does_not_run_setup_again(tmp_path: Path) -> None:
    st = new_stage(tmp_path / "j.journal", 3)
    other = open_storage(str(tmp_path / "j.journal"))  # another process's view
    _, created = ensure_study(other, "s/coarse", "maximize", lambda s: add_tickets(s, 3))
    assert not created and len(st.trials()) == 3


def test_claims_are_exclusive_and_run_out_exactly(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    a = new_stage(path, 3)
    b = Stage(open_storage(str(path)), optuna.load_study(study_name="s/coarse",
                                                          storage=open_storage(str(path))))
    ids = [a.claim(), b.claim(), a.claim()]
    assert None not in ids and len(set(ids)) == 3
    assert a.claim() is None and b.claim() is None
    c = counts(a.trials())
    assert (c.requested, c.running, c.waiting, c.done) == (3, 3, 0, False)


def test_reap_fails_and_requeues_a_dead_workers_trial(tmp_path: Path) -> None:
    st = new_stage(tmp_path / "j.journal", 2)
    trial_id = st.claim()
    st.study.sampler = optuna.samplers.RandomSampler(seed=0)
    trial = optuna.trial.Trial(st.study, trial_id)
    lr = trial.suggest_float("opt.lr", 1e-4, 1.0, log=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = {**worker_identity(), "pid": gone.pid}
    st.storage.set_trial_user_attr(trial_id, WORKER, dead)
    assert not worker_alive(dead) and worker_alive(worker_identity())

    (reaped,) = st.reap()
    assert reaped.number == 0
    trials = st.trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["cnnexp.reason"] == "worker died"
    retry = trials[-1]
    assert retry.state == TrialState.WAITING and retry.params == {"opt.lr": lr}
    assert retry.system_attrs["retry_history"] == [0]
    c = counts(trials)
    assert (c.requested, c.waiting, c.failed, c.retried) == (2, 2, 0, 1)
    assert st.reap() == []  # nothing else is stale; our own process is alive


def test_running_trial_of_a_live_worker_is_left_alone(tmp_path: Path) -> None:
    st = new_stage(tmp_path / "j.journal", 1)
    st.claim()
    assert st.reap() == [] and counts(st.trials()).running == 1
    assert worker_alive({"host": "another-host", "pid": os.getpid() + 10**6})


def test_a_worker_in_another_pid_namespace_or_boot_is_never_judged_by_pid() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = {**worker_identity(), "pid": gone.pid}
    assert not worker_alive(dead)
    # same host name, but another container (pid namespace) or machine (boot id): the pid
    # means nothing here, so only heartbeats may judge it
    assert worker_alive({**dead, "pidns": "pid:[1]"})
    assert worker_alive({**dead, "boot": "another-boot"})
    # identities written before boot/pidns were recorded are still judged by pid
    assert not worker_alive({k: dead[k] for k in ("host", "pid", "start")})


# --- the journal file: never someone else's file, never a torn line made permanent ---------

def test_an_ordinary_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    import pytest

    from cnnexp.errors import BadInput

    keep = tmp_path / "keep.yaml"
    keep.write_text("train: {epochs: 3}\n")
    with pytest.raises(BadInput, match="not an Optuna journal"):
        open_storage(str(keep))
    assert keep.read_text() == "train: {epochs: 3}\n"


def test_a_torn_last_line_is_set_aside_and_the_study_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    stage = new_stage(path, 3)
    claimed = stage.claim()
    assert claimed is not None
    good = path.read_bytes()
    path.write_bytes(good + b'{"op_code": 5, "worker_id": "x", "study_id": 0, "tri')  # killed
    said: list[str] = []
    storage = open_storage(str(path), say=said.append)
    assert path.read_bytes() == good  # the torn line is gone from the journal ...
    (kept,) = tmp_path.glob("j.journal.torn-*")
    assert kept.read_bytes().startswith(b'{"op_code": 5')  # ... and kept beside it
    assert said and "cut short" in said[0]
    study = optuna.load_study(study_name="s/coarse", storage=storage)
    assert counts(study.get_trials()).requested == 3
    study.set_user_attr("after", 1)  # writing goes on from a clean line
    assert optuna.load_study(study_name="s/coarse", storage=open_storage(str(path))
                             ).user_attrs["after"] == 1


def test_a_damaged_middle_line_is_bad_input(tmp_path: Path) -> None:
    import pytest

    from cnnexp.errors import BadInput

    path = tmp_path / "j.journal"
    new_stage(path, 2)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    before = path.read_bytes()
    with pytest.raises(BadInput, match="line 2 of the journal is damaged"):
        open_storage(str(path))
    assert path.read_bytes() == before
