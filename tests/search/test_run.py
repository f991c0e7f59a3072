"""Real searches on digits (tiny: a data subset, 1-2 epochs) into a temporary Optuna journal and
a temporary MLflow store: counts, nesting, narrowing, resume after Ctrl-C, the edge check."""

from __future__ import annotations

import math
import re
from pathlib import Path

import optuna
import pytest

from cnnexp.engine import Callback
from cnnexp.search import SearchOptions, run_search
from cnnexp.search.config import build_plan
from cnnexp.search.narrow import fmt, from_dict, next_space
from cnnexp.search.storage import counts, open_storage
from cnnexp.tracking.tags import KIND

FAST = ["data.subset=200", "search.stages.coarse.epochs=1", "search.stages.fine.epochs=2",
        "search.confirm.seeds=2", "search.confirm.epochs=1"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster
    than two competing with other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def runs_of(client, study: str) -> list:
    exp = client.get_experiment_by_name(study)
    return client.search_runs([exp.experiment_id], max_results=1000)


def kind(runs: list, k: str) -> list:
    return [r for r in runs if r.data.tags.get(KIND) == k]


# a coarse stage that learns something (so it has signal to narrow around): 600 images, 3 epochs
INFORMATIVE = [*FAST, "data.subset=600", "search.stages.coarse.epochs=3",
               "search.space.opt.lr.low=1.0e-3"]


def test_two_stage_search_end_to_end(cli, workdir: Path, mlflow_client) -> None:
    res = cli("search", *INFORMATIVE, "--trials", "coarse=4,fine=2", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    coarse, fine = out["stages"]
    assert (coarse["name"], fine["name"]) == ("coarse", "fine")
    for s, n in ((coarse, 4), (fine, 2)):
        assert s["trials"] == n == s["complete"] + s["pruned"] + s["failed"]
        assert set(s) >= {"best_value", "best_params", "ranges", "edge_warnings"}

    # the fine ranges are exactly the narrowing of coarse's top-4 (digits: fine.top_k = 4),
    # extended only past the edges coarse warned about
    assert coarse["signal"] is True, coarse["noise"]
    plan = build_plan("digits", INFORMATIVE)
    space = {p: from_dict(d) for p, d in coarse["ranges"].items()}
    top = [t["params"] for t in coarse["top"]][:4]
    flagged = {w.split("=")[0].removeprefix("best ") for w in coarse["edge_warnings"]}
    want = next_space(space, top, top[0], margin=0.1, bounds=plan.bounds,
                      stands_out=lambda path, side: path in flagged)
    assert fine["ranges"] == {p: v.to_dict() for p, v in want.space.items()}
    assert coarse["edge_warnings"] == want.warnings
    lr, lr0 = fine["ranges"]["opt.lr"], coarse["ranges"]["opt.lr"]
    assert math.log10(lr["high"] / lr["low"]) < math.log10(lr0["high"] / lr0["low"])

    # the best trial is the last stage's (stages ran at different budgets)
    best = out["best"]
    assert best["value"] == fine["best_value"] and best["stage"] == "fine"

    # MLflow: study -> stage -> trial, with the trial numbers as tags
    runs = runs_of(mlflow_client, out["study"])
    (parent,), stages, trials = kind(runs, "search"), kind(runs, "stage"), kind(runs, "trial")
    assert parent.info.status == "FINISHED" and parent.info.run_name == out["study"]
    note = parent.data.tags["mlflow.note.content"].replace("\u00a0", "")  # cell padding
    assert "Search" in note
    # each stage's finding on the study's own page; ranges as code, never read as links
    assert "| finding |" in note and note.count("| signal: ") + note.count("| no signal: ") == 2
    # importance: shown, or its withholding explained (4 and 2 trials: too few for fANOVA)
    assert "Parameter importance: withheld: fANOVA needs >= 20 completed trials" in note
    assert re.search(r"the stages completed coarse \d+, fine \d+", note), note
    fine_note = next(r for r in stages if r.info.run_name == "fine").data.tags[
        "mlflow.note.content"]
    assert re.search(r"- `opt\.lr`: `\[[^`]+` -> `\[[^`]+` \(narrowed\)", fine_note), fine_note
    assert sorted(r.info.run_name for r in stages) == ["coarse", "fine"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in stages)
    by_stage = {r.info.run_name: r.info.run_id for r in stages}
    for name, n in (("coarse", 4), ("fine", 2)):
        mine = [r for r in trials if r.data.tags["cnnexp.stage"] == name]
        assert len(mine) == n
        assert all(r.data.tags["mlflow.parentRunId"] == by_stage[name] for r in mine)
        assert sorted(int(r.data.tags["cnnexp.trial"]) for r in mine) == list(range(n))
        assert all(r.info.run_name.startswith(f"{name}-0") and " lr=" in r.info.run_name
                   for r in mine)
    done = next(r for r in trials if r.data.tags["cnnexp.state"] == "complete")
    assert len(mlflow_client.get_metric_history(done.info.run_id, "val_acc")) >= 1
    # every trial that finished fitting carries its learning-curve diagnosis, as do the tables
    from cnnexp.diagnose.rules import DIAGNOSES

    assert done.data.tags["diagnosis"] in DIAGNOSES
    assert all(t["diagnosis"] in DIAGNOSES for t in coarse["top"])
    assert "| diagnosis |" in next(r for r in stages if r.info.run_name == "coarse"
                                   ).data.tags["mlflow.note.content"].replace("\u00a0", "")
    files = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "best.yaml", "plots", "search.json"} <= files

    # files: CSV of every trial, and the best recipe trains
    import pandas as pd

    assert len(pd.read_csv(out["csv_path"])) == 6
    assert set(pd.read_csv(out["csv_path"])["diagnosis"].dropna()) <= set(DIAGNOSES)
    trained = cli("train", out["best_recipe_path"], "train.epochs=1", "--no-track", "--json")
    assert trained.exit_code == 0, trained.stderr

    # re-running the same command resumes the finished study: no new trial
    again = cli("search", *INFORMATIVE, "--trials", "coarse=4,fine=2", "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["study"] == out["study"]
    storage = open_storage("cnnexp-optuna.journal")
    for name in ("coarse", "fine"):
        assert len(optuna.load_study(study_name=f"{out['study']}/{name}",
                                     storage=storage).trials) == (4 if name == "coarse" else 2)


class CtrlC(Callback):
    """Ctrl-C arriving during the first epoch of the k-th trial this process runs."""

    def __init__(self, k: int) -> None:
        self.k, self.fits = k, 0

    def on_fit_start(self, state) -> None:
        self.fits += 1

    def on_epoch_end(self, state, metrics) -> None:
        if self.fits == self.k:
            raise KeyboardInterrupt


def test_interrupted_search_resumes_to_exactly_the_requested_count(workdir: Path,
                                                                    mlflow_client) -> None:
    opts = SearchOptions(trials="coarse=4,fine=1")
    with pytest.raises(KeyboardInterrupt):
        run_search("digits", FAST, opts, lines=False, callbacks=[CtrlC(3)])
    study = build_plan("digits", FAST).recipe_name + "-" + build_plan("digits", FAST).fingerprint
    storage = open_storage("cnnexp-optuna.journal")
    coarse = optuna.load_study(study_name=f"{study}/coarse", storage=storage)
    c = counts(coarse.trials)
    assert (c.finished, c.waiting, c.retried, c.running) == (2, 2, 1, 0)
    runs = runs_of(mlflow_client, study)
    (parent,) = kind(runs, "search")
    assert parent.info.status == "KILLED"
    (killed,) = [r for r in kind(runs, "trial") if r.info.status == "KILLED"]
    assert killed.data.tags["cnnexp.state"] == "interrupted"
    assert [r.info.status for r in kind(runs, "stage")] == ["KILLED"]

    out = run_search("digits", FAST, SearchOptions(trials="coarse=4,fine=1", resume=True),
                     lines=False)
    assert [(s["name"], s["trials"]) for s in out["stages"]] == [("coarse", 4), ("fine", 1)]
    c = counts(coarse.trials)
    assert (c.finished, c.waiting, c.running, c.retried, c.requested) == (4, 0, 0, 1, 4)
    retry = next(t for t in coarse.trials if t.system_attrs.get("failed_trial") is not None)
    original = coarse.trials[retry.system_attrs["failed_trial"]]
    assert retry.params == original.params and retry.state.is_finished()

    runs = runs_of(mlflow_client, study)
    (parent2,) = kind(runs, "search")
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    assert sorted(r.info.status for r in kind(runs, "stage")) == ["FINISHED", "FINISHED"]
    finished = [r for r in kind(runs, "trial") if r.data.tags["cnnexp.stage"] == "coarse"
                and r.info.status != "KILLED"]
    numbers = [int(r.data.tags["cnnexp.trial"]) for r in finished]
    assert len(numbers) == 4 and len(set(numbers)) == 4  # no trial ran twice
    assert int(next(r for r in finished if "cnnexp.retry_of" in r.data.tags)
               .data.tags["cnnexp.retry_of"]) == original.number


def test_edge_warning_when_the_range_is_placed_too_low(cli, workdir: Path) -> None:
    # lr in [1e-5, 1e-3] is far too small for SGD on digits: after one epoch the lowest val loss
    # comes from the largest lr tried, which the seeded sampler puts in the top 10% of the range.
    args = ["data.subset=300", "opt.warmup_epochs=0", "search.metric=val_loss",
            "search.summary=last",
            "search.space.opt.lr={low: 1.0e-5, high: 1.0e-3, log: true}",
            "search.space.opt.weight_decay=null", "search.space.reg.dropout=null",
            "search.space.arch.norm=null", "search.stages.coarse.epochs=1",
            "search.stages.fine.epochs=1"]
    res = cli("search", *args, "--trials", "coarse=5,fine=1", "--no-track", "--json")
    assert res.exit_code == 0, res.stderr
    coarse, fine = res.json()["stages"]
    best_lr = coarse["best_params"]["opt.lr"]
    tried = [t["params"]["opt.lr"] for t in coarse["top"]]
    assert best_lr == max(tried) and math.log10(best_lr) >= -3.2, "precondition"
    assert coarse["edge_warnings"] == [
        f"best opt.lr={fmt(best_lr)} is at the upper edge of [1e-5, 0.001]"]
    # extended past the edge (at most a decade, and at most a quarter of the fine range) ...
    lo, hi = (math.log10(fine["ranges"]["opt.lr"][k]) for k in ("low", "high"))
    assert -3 < hi <= -2 and (hi + 3) <= 0.25 * (hi - lo) + 0.01
    assert fine["ranges"]["opt.lr"]["low"] > 1e-5  # and narrowed from below
    assert fine["narrowing"]["opt.lr"]["how"].startswith("narrowed on the other side, extended")
    assert "upper edge" in res.stderr  # told to the user too


def test_diverging_trials_are_pruned_and_the_search_goes_on(cli, workdir: Path,
                                                            mlflow_client) -> None:
    # lr >= 1000 without normalisation: every trial's loss blows up
    args = ["data.subset=200", "arch.norm=none", "search.space.arch.norm=null",
            "search.space.opt.lr={low: 1000.0, high: 10000.0, log: true}",
            "search.stages.coarse.epochs=2", "search.stages.fine.epochs=1"]
    res = cli("search", *args, "--trials", "coarse=3,fine=1", "--json")
    assert res.exit_code == 1  # nothing completed: a failed search, but fully recorded
    assert "no trial completed" in res.stderr
    out = res.json()
    assert [(s["trials"], s["pruned"], s["complete"]) for s in out["stages"]] == [(3, 3, 0),
                                                                                  (1, 1, 0)]
    assert out["best"] is None and out["stages"][1]["ranges"] == out["stages"][0]["ranges"]
    runs = [r for r in runs_of(mlflow_client, out["study"])
            if r.data.tags.get(KIND) == "trial"]
    assert len(runs) == 4
    for r in runs:
        assert r.data.tags["cnnexp.state"] == "pruned"
        assert r.data.tags["cnnexp.reason"].startswith("diverged")
        assert r.info.status == "FAILED"


def test_trials_are_reproducible_from_the_seed(cli, workdir: Path) -> None:
    args = ["data.subset=100", "search.stages.coarse.epochs=1"]
    first = cli("search", *args, "--stages", "coarse", "--trials", "3", "--no-track", "--json")
    again = cli("search", *args, "--stages", "coarse", "--trials", "3", "--no-track", "--json",
                "--study", "another")
    other = cli("search", *args, "search.seed=7", "--stages", "coarse", "--trials", "3",
                "--no-track", "--json")

    def params(res) -> dict:
        assert res.exit_code == 0, res.stderr
        return {t["trial"]: t["params"] for t in res.json()["stages"][0]["top"]}

    assert params(first) == params(again) != params(other)


class DiskFull(Callback):
    """The disk filling up during the first epoch of the k-th trial this process runs."""

    def __init__(self, k: int) -> None:
        self.k, self.fits = k, 0

    def on_fit_start(self, state) -> None:
        self.fits += 1

    def on_epoch_end(self, state, metrics) -> None:
        if self.fits == self.k:
            import errno

            raise OSError(errno.ENOSPC, "No space left on device", "checkpoints/last.pt")


def test_a_trial_failed_by_a_full_disk_is_requeued_and_resume_runs_it(workdir: Path,
                                                                      mlflow_client) -> None:
    from cnnexp.errors import StoreFailed

    opts = SearchOptions(trials="coarse=4,fine=1")
    with pytest.raises(StoreFailed, match="re-queued: fix the cause, then rerun with --resume"):
        run_search("digits", FAST, opts, lines=False, callbacks=[DiskFull(3)])
    study = build_plan("digits", FAST).recipe_name + "-" + build_plan("digits", FAST).fingerprint
    coarse = optuna.load_study(study_name=f"{study}/coarse",
                               storage=open_storage("cnnexp-optuna.journal"))
    c = counts(coarse.trials)
    assert (c.finished, c.retried, c.running) == (2, 1, 0)  # the failed one waits again

    out = run_search("digits", FAST, SearchOptions(trials="coarse=4,fine=1", resume=True),
                     lines=False)
    assert [(s["name"], s["trials"], s["failed"]) for s in out["stages"]] == [
        ("coarse", 4, 0), ("fine", 1, 0)]  # all 4, none lost to the full disk
    assert "RUNNING" not in {r.info.status for r in runs_of(mlflow_client, study)}


class Locked(Callback):
    """Another process holding the SQLite store's write lock past the timeout, during the
    first epoch of the trials numbered in `at` (counted in this process)."""

    def __init__(self, *at: int) -> None:
        self.at, self.fits = set(at), 0

    def on_fit_start(self, state) -> None:
        self.fits += 1

    def on_epoch_end(self, state, metrics) -> None:
        if self.fits in self.at:
            import sqlite3

            raise sqlite3.OperationalError("database is locked")


def test_a_locked_store_requeues_the_trial_and_the_search_goes_on(workdir: Path,
                                                                   mlflow_client) -> None:
    out = run_search("digits", FAST, SearchOptions(trials="coarse=3,fine=1"), lines=False,
                     callbacks=[Locked(2)])
    assert [(s["name"], s["trials"], s["failed"]) for s in out["stages"]] == [
        ("coarse", 3, 0), ("fine", 1, 0)]  # the locked trial ran again, nothing lost
    assert "RUNNING" not in {r.info.status for r in runs_of(mlflow_client, out["study"])}


def test_a_store_locked_for_good_stops_the_search(workdir: Path) -> None:
    from cnnexp.errors import StoreFailed

    with pytest.raises(StoreFailed, match="database is locked; it is re-queued"):
        run_search("digits", FAST, SearchOptions(trials="coarse=3,fine=1"), lines=False,
                   callbacks=[Locked(*range(1, 10))])
