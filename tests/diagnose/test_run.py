"""Diagnosis on tracked runs: `cnnexp train` tags and describes it and logs the classification
artifacts; `cnnexp diagnose RUN_ID` reads the curves back from a real MLflow store."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnexp.diagnose.rules import DIAGNOSES
from tests.diagnose.test_rules import OVERFIT


def test_train_diagnosis_artifacts_and_report(cli, mlflow_client) -> None:
    res = cli("train", "data.subset=300", "train.epochs=3", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["diagnosis"] in DIAGNOSES and out["diagnosis_note"]
    run = mlflow_client.get_run(out["run_id"])
    assert run.data.tags["diagnosis"] == out["diagnosis"]
    assert f"**Diagnosis: {out['diagnosis']}**" in run.data.tags["mlflow.note.content"]
    exp = mlflow_client.get_experiment(out["experiment_id"])
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

    # training logs numbers only; the figures are drawn from them off the training path (the
    # background process `cnnexp train` starts runs exactly this)
    files = {f.path for f in mlflow_client.list_artifacts(out["run_id"], "classification")}
    assert files == {f"classification/{n}" for n in ("confusion_matrix.csv", "top_losses.json")}
    from cnnexp.diagnose.figures import missing, render

    drawn = render(out["run_id"])
    assert sorted(drawn) == ["classification/confusion_matrix.png",
                             "classification/top_losses.png", "diagnosis/curves.png"]
    assert missing(out["run_id"]) == []
    files = {f.path for f in mlflow_client.list_artifacts(out["run_id"], "classification")}
    assert files == {f"classification/{n}" for n in (
        "confusion_matrix.png", "confusion_matrix.csv", "top_losses.png", "top_losses.json")}
    local = Path(mlflow_client.download_artifacts(out["run_id"], "classification"))
    rows = list(csv.reader(io.StringIO((local / "confusion_matrix.csv").read_text())))
    counts = [[int(v) for v in row[1:]] for row in rows[1:]]
    assert len(counts) == 10 and all(len(r) == 10 for r in counts)
    n_val = sum(map(sum, counts))
    from cnnexp import build_data, load_recipe

    assert n_val == build_data(load_recipe("digits", ["data.subset=300"])).n_val
    # The confusion matrix agrees with the logged final val_acc.
    diag = sum(counts[i][i] for i in range(10))
    assert abs(diag / n_val - out["val_acc"]) < 1e-6
    assert (local / "top_losses.png").read_bytes()[:4] == b"\x89PNG"
    assert mlflow_client.list_artifacts(out["run_id"], "diagnosis")

    # Read back from MLflow, the same verdict (and the id prefix works too).
    back = cli("diagnose", out["run_id"][:10], "--json")
    assert back.exit_code == 0, back.stderr
    got = back.json()
    assert got["run_id"] == out["run_id"] and got["diagnosis"] == out["diagnosis"]
    assert set(got) >= {"run_id", "diagnosis", "evidence", "remedies"}
    assert got["evidence"]["epochs"] == 3
    assert got["evidence"]["val_acc"] == round(out["val_acc"], 4)

    human = cli("diagnose", out["run_id"])
    assert human.exit_code == 0 and out["diagnosis"] in human.stdout and "remedies" in human.stdout

    bad = cli("diagnose", out["run_id"][:-1] + "0", "--json")
    assert bad.exit_code == 2 and bad.json() == {
        "error": bad.stderr.strip().removeprefix("error: "), "exit_code": 2}
    assert "did you mean" in bad.stderr and out["run_id"] in bad.stderr
    assert "Traceback" not in bad.stderr

    # The HTML report on that run: self-contained, the diagnosis and three inline plots, and
    # logged to the run.
    rep = cli("report", out["run_id"], "--out", "r.html", "--json")
    assert rep.exit_code == 0, rep.stderr
    meta = rep.json()
    assert meta["logged_to"] == out["run_id"] and meta["artifact"] == "report/r.html"
    page = Path("r.html").read_text()
    assert f"Training run {run.info.run_name}: {out['diagnosis']}" in page
    assert page.count('src="data:image/png;base64,') == 3  # curves, confusion, top losses
    assert "http://" not in page and "https://" not in page and "<script" not in page
    logged = {f.path for f in mlflow_client.list_artifacts(out["run_id"], "report")}
    assert logged == {"report/r.html"}
    into_dir = cli("report", out["run_id"][:8], "--out", ".", "--no-log", "--json").json()
    assert Path(into_dir["out"]).name.startswith("train-digits") and into_dir["logged_to"] is None
    blocked = cli("report", out["run_id"], "--out", "r.html/x.html")  # r.html is a file
    assert blocked.exit_code == 2 and "cannot write the report to" in blocked.stderr
    missing = cli("report", "digitz")
    assert missing.exit_code == 2 and "did you mean 'digits'" in missing.stderr


def test_diagnose_reads_logged_history_thresholds_and_parents(cli, workdir) -> None:
    from cnnexp import tracking

    with tracking.run("manual", "overfit-curves") as r:
        for i, h in enumerate(OVERFIT, start=1):
            r.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=i)
    res = cli("diagnose", r.run_id, "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["diagnosis"] == "overfitting"
    assert out["evidence"]["best_epoch"] == 5 and out["evidence"]["epochs"] == 10
    assert any(x.startswith("Training longer") for x in out["not_remedies"])
    relaxed = cli("diagnose", r.run_id, "--json", "--threshold", "gap=0.5").json()
    assert relaxed["diagnosis"] != "overfitting" and relaxed["thresholds"]["gap"] == 0.5

    bad = cli("diagnose", r.run_id, "--threshold", "gapp=0.1")
    assert bad.exit_code == 2 and "did you mean 'gap'" in bad.stderr

    # A parent run has no curves of its own: the message points at a child.
    with tracking.run("manual", "study") as parent, \
            tracking.run("manual", "trial-0", parent=parent) as child:
        child.log_metrics({"val_acc": 0.5, "val_loss": 1.0, "train_acc": 0.5,
                           "train_loss": 1.0}, step=1)
    res = cli("diagnose", parent.run_id)
    assert res.exit_code == 2
    assert "no per-epoch train/val curves" in res.stderr and child.run_id in res.stderr

    # `cnnexp ui` prints links that open the runs table in MLflow's "Model training" view, in
    # the cnnexp view for experiments cnnexp made (one made elsewhere has no such view)
    from mlflow import MlflowClient

    from cnnexp.tracking.ui import experiment_links

    other = MlflowClient().create_experiment("made-elsewhere")
    links = experiment_links("http://127.0.0.1:5000")
    assert f"  manual: http://127.0.0.1:5000/#/experiments/{r.experiment_id}/runs" \
           "?workflowType=machine_learning&viewStateShareKey=cnnexp" in links
    assert f"  made-elsewhere: http://127.0.0.1:5000/#/experiments/{other}/runs" \
           "?workflowType=machine_learning" in links

    missing = cli("diagnose", "0123456789abcdef")
    assert missing.exit_code == 2 and "no run '0123456789abcdef'" in missing.stderr


def _copies(db: Path, run_id: str, ids: list[str], later_ms: int = 1000) -> None:
    """Rows for more runs in the same store, each a copy of `run_id` started later (a store
    with thousands of runs, in milliseconds rather than minutes of create_run)."""
    import sqlite3

    cols = [c[1] for c in sqlite3.connect(db).execute("pragma table_info(runs)")]
    picked = ", ".join("?" if c == "run_uuid" else f"start_time + {later_ms}"
                       if c == "start_time" else c for c in cols)
    with sqlite3.connect(db) as conn:
        conn.executemany(f"insert into runs ({', '.join(cols)}) select {picked} from runs "
                         "where run_uuid = ?", [(new, run_id) for new in ids])


def test_diagnose_prefix_ambiguous_old_and_short(cli, workdir: Path) -> None:
    """A prefix shared by several runs names them; a run older than the newest 1000 is still
    found by its prefix; a prefix under 6 characters says why it is refused."""
    import uuid

    from cnnexp import tracking

    with tracking.run("manual", "oldest") as old:
        for i, h in enumerate(OVERFIT, start=1):
            old.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=i)
    newer = [uuid.uuid4().hex for _ in range(1100)]
    twins = [old.run_id[:7] + c + uuid.uuid4().hex[8:] for c in "01"
             if old.run_id[7] != c][:1]
    _copies(workdir / "mlflow.db", old.run_id, newer + twins)

    res = cli("diagnose", old.run_id[:8], "--json")  # beyond the newest 1000 runs
    assert res.exit_code == 0, res.stderr
    assert res.json()["run_id"] == old.run_id and res.json()["diagnosis"] == "overfitting"

    amb = cli("diagnose", old.run_id[:7])
    assert amb.exit_code == 2, amb.stderr
    assert f"run id prefix '{old.run_id[:7]}' is ambiguous: matches" in amb.stderr
    assert old.run_id in amb.stderr and twins[0] in amb.stderr
    assert len(amb.stderr.strip().splitlines()) == 1

    short = cli("diagnose", old.run_id[:5])
    assert short.exit_code == 2
    assert "a prefix needs at least 6 characters of the run id (got 5)" in short.stderr


def test_cli_train_draws_figures_in_a_background_process(cli, mlflow_client, monkeypatch) -> None:
    """`cnnexp train` prints its result first; a detached process then draws the figures."""
    import time

    from cnnexp.diagnose import figures

    spawned = []
    real_spawn = figures.spawn
    monkeypatch.setenv(figures.MODE_ENV, "background")
    monkeypatch.setattr(figures, "spawn", lambda run_id: spawned.append(real_spawn(run_id)))
    res = cli("train", "data.subset=200", "train.epochs=1", "--json")
    assert res.exit_code == 0, res.stderr
    run_id = res.json()["run_id"]
    assert len(spawned) == 1 and spawned[0] is not None
    assert spawned[0].wait(timeout=120) == 0
    deadline = time.monotonic() + 5
    while figures.missing(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert figures.missing(run_id) == []
    assert "diagnosis/curves.png" in {f.path for f in mlflow_client.list_artifacts(
        run_id, "diagnosis")}
