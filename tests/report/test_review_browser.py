"""The review experience in a real browser: a small sanity + search + ablate on digits in one
experiment, `cnnexp ui` on a free loopback port, headless Chromium reading the pages.

Needs Debian's `chromium` (.ci/run installs it). Screenshots go to tests/artifacts/review/."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cnnexp.tracking.tags import KIND

pytestmark = pytest.mark.slow

EXP = "review-demo"
ARTIFACTS = Path(__file__).parent.parent / "artifacts" / "review"
ARMS = ("baseline", "no augmentation", "no weight decay", "no batchnorm", "with label smoothing")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium not found: `apt-get install -y chromium` (.ci/run does this)")
    return found


def _browse(url: str, profile: Path, *, screenshot: Path | None = None,
            width: int = 3000) -> str:
    """The DOM after a 20 s virtual-time budget (MLflow's UI fetches runs asynchronously), or
    a 1400x1000 screenshot. The runs grid renders only the columns within `width` px: a
    column in a 1600-px DOM is one a reviewer sees without scrolling."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=20000"]
    # the DOM at 3000 px wide: the runs grid renders only the columns in view
    cmd += [f"--screenshot={screenshot}", "--window-size=1400,1000"] if screenshot else \
        ["--dump-dom", f"--window-size={width},1000"]
    shutil.rmtree(profile, ignore_errors=True)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=240)
    return out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, "cnnexp ui exited early"
        assert time.time() < deadline, "the MLflow UI did not start"
        time.sleep(1)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _unpadded(dom: str) -> str:
    """The DOM without the no-break spaces that pad description table cells."""
    return dom.replace("&nbsp;", "").replace("\u00a0", "")


def _kind(runs, kind: str):
    return [r for r in runs if r.data.tags.get(KIND) == kind]


def test_review_in_mlflow_ui_with_headless_chromium(cli, workdir: Path, mlflow_client) -> None:
    from cnnexp.tracking.query import runs_url

    _chromium()
    sanity = cli("sanity", "--experiment", EXP, "--json")
    assert sanity.exit_code in (0, 1), sanity.stderr
    search = cli("search", "search.stages.coarse.epochs=1", "search.stages.fine.epochs=2",
                 "search.confirm.seeds=2", "search.confirm.epochs=1", "--trials", "coarse=3,fine=2",
                 "--study", EXP, "--json")
    assert search.exit_code == 0, search.stderr
    ablate = cli("ablate", "train.epochs=2", "--seeds", "2", "--experiment", EXP,
                 "--out", "abl", "--json")
    assert ablate.exit_code == 0, ablate.stderr

    train = cli("train", "train.epochs=3", "--experiment", EXP, "--test", "--json")
    assert train.exit_code == 0, train.stderr
    final = train.json()

    exp_id = mlflow_client.get_experiment_by_name(EXP).experiment_id
    runs = mlflow_client.search_runs([exp_id], max_results=1000)
    (san,), (study,), (abl,) = _kind(runs, "sanity"), _kind(runs, "search"), _kind(runs, "ablation")
    (fin,) = _kind(runs, "train")
    trial = next(r for r in _kind(runs, "trial") if r.data.tags.get("diagnosis"))
    stage = next(r for r in runs if r.info.run_id == trial.data.tags["mlflow.parentRunId"])
    seed = _kind(runs, "ablation-seed")[0]
    arm = next(r for r in runs if r.info.run_id == seed.data.tags["mlflow.parentRunId"])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]

    # The HTML report of the whole experiment (kept with the screenshots).
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rep = cli("report", EXP, "--out", str(ARTIFACTS / "report.html"), "--json")
    assert rep.exit_code == 0, rep.stderr
    page = (ARTIFACTS / "report.html").read_text()
    for title in ("Sanity checks:", f"Search {EXP}", "Best trial:", "Ablation digits_components"):
        assert title in page
    assert "<th>Diagnosis</th>" in page and all(f"<td>{a}</td>" in page for a in ARMS)
    assert rep.json()["logged_to"] == abl.info.run_id

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (workdir / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.cli", "ui", "--port", str(port)],
                            cwd=workdir, env=dict(os.environ), stdout=log, stderr=log,
                            start_new_session=True)
    profile = workdir / "chromium-profile"
    try:
        _wait_for(base + "/", proc)
        # `cnnexp ui` prints the link that opens the runs table in the "Model training" view,
        # in the experiment's saved cnnexp view (sorted by best_val_acc, key columns shown)
        link = (f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
                "&viewStateShareKey=cnnexp")
        assert runs_url(base, exp_id) == link
        assert f"{EXP}: {link}" in (workdir / "ui.log").read_text()

        dom = _browse(link, profile)
        (ARTIFACTS / "runs_table.html").write_text(dom)
        assert "share key" not in dom  # MLflow found and loaded the saved view
        # the view's columns that runs here have (MLflow shows no column nobody logged)
        for column in ("metrics.`best_val_acc`", "metrics.`best_val_acc_se`",
                       "metrics.`seconds`", "params.`opt.lr`", "tags.`diagnosis`"):
            assert f'col-id="{column}"' in dom, column
        # ordered by best_val_acc, best first
        assert re.search(r'is-ordered-by"[^>]*col-id="metrics.`best_val_acc`"', dom)
        shown = [float(v) for v in re.findall(
            r'id="cell-metrics.`best_val_acc`-\d+" class="ag-cell-value">([0-9.]+)<', dom)]
        assert len(shown) >= 1 and shown == sorted(shown, reverse=True), shown
        for r in (san, study, abl, fin):  # the top-level runs, by name and link
            assert f'href="#/experiments/{exp_id}/runs/{r.info.run_id}"' in dom
            assert f">{r.info.run_name}<" in dom
        # ordered by a metric, MLflow lists the runs that have it (trials, seeds) flat, best
        # first; the plain table (by creation time) folds children under their parents
        plain = _browse(runs_url(base, exp_id, view=False), profile)
        for r in (san, study, abl, fin):
            assert f'href="#/experiments/{exp_id}/runs/{r.info.run_id}"' in plain
        assert not any(f"/runs/{c.info.run_id}\"" in plain for c in children)

        # one view per kind of run, printed under the experiment's link; at 1600 px each opens
        # on its decisive columns (the metric and its noise, the diagnosis or verdict, the
        # budget) and lists that kind of run only
        printed = (workdir / "ui.log").read_text()
        views = {key: runs_url(base, exp_id, key=key)
                 for key in ("cnnexp-train", "cnnexp-trials", "cnnexp-arms")}
        for label, key in (("training runs", "cnnexp-train"), ("search trials", "cnnexp-trials"),
                           ("ablation arms", "cnnexp-arms")):
            assert f"{label}: {views[key]}" in printed, label
        wanted = {
            "cnnexp-train": (_kind(runs, "train"), ["metrics.`best_val_acc`",
                             "metrics.`best_val_acc_se`", "metrics.`test_acc`",
                             "metrics.`test_acc_se`", "tags.`diagnosis`",
                             "params.`train.epochs`", "params.`data.subset`"]),
            "cnnexp-trials": (_kind(runs, "trial"), ["metrics.`objective`",
                              "metrics.`best_val_acc_se`", "tags.`diagnosis`",
                              "params.`search.stage`", "params.`train.epochs`"]),
            "cnnexp-arms": (_kind(runs, "ablation-arm"), ["metrics.`mean`", "metrics.`std`",
                            "metrics.`delta_pp`", "metrics.`p_value`",
                            "tags.`cnnexp.verdict`"])}
        for key, (kind_runs, columns) in wanted.items():
            dom = _browse(views[key], profile, width=1600)
            (ARTIFACTS / f"view_{key}.html").write_text(dom)
            assert "share key" not in dom, key
            for column in columns:
                assert f'col-id="{column}"' in dom, (key, column)
            listed = set(re.findall(rf'href="#/experiments/{exp_id}/runs/(\w+)"', dom))
            assert listed == {r.info.run_id for r in kind_runs}, key
        arms_dom = (ARTIFACTS / "view_cnnexp-arms.html").read_text()
        for a in ARMS:
            assert f">{a}<" in arms_dom, a
        verdicts = re.findall(r'id="cell-tags.`cnnexp.verdict`-\d+" class="ag-cell-value">'
                              r"([^<]+)<", arms_dom)
        assert len(verdicts) == len(ARMS), verdicts

        # the study's page: each stage's finding in its description
        study_dom = _unpadded(_browse(runs_url(base, exp_id, study.info.run_id), profile,
                                      width=1600))
        assert "<th>finding</th>" in study_dom
        assert re.search(r"<td>(no )?signal", study_dom), "stage findings"

        # a trial's page names its stage as parent, the stage its study, a seed its arm
        for child, parent in ((trial, stage), (stage, study), (seed, arm), (arm, abl)):
            child_dom = _browse(runs_url(base, exp_id, child.info.run_id), profile)
            assert (f'href="#/experiments/{exp_id}/runs/{parent.info.run_id}">'
                    f"{parent.info.run_name}</a>") in child_dom, child.info.run_name

        # the ablation table is the parent run's description, rendered as a table
        abl_dom = _browse(runs_url(base, exp_id, abl.info.run_id), profile)
        table = _unpadded(abl_dom[abl_dom.index("<table"):abl_dom.index("</table>")])
        assert "&nbsp;Arm&nbsp;" in abl_dom or "\u00a0Arm\u00a0" in abl_dom  # padded cells
        heads = re.findall(r"<th>([^<]*)</th>", table)
        assert heads[:2] == ["Arm", "Change"] and {"Verdict", "Diagnosis"} <= set(heads)
        assert [c for c in re.findall(r"<tr>\s*<td>([^<]*)</td>", table)] == list(ARMS)

        # the final run: its diagnosis tag and description on its page
        fin_dom = _browse(runs_url(base, exp_id, fin.info.run_id), profile)
        assert f"Diagnosis: {final['diagnosis']}" in fin_dom and "Remedies" in fin_dom

        shots = {"runs_table": link,
                 **{f"view_{key}": url for key, url in views.items()},
                 "train_run": runs_url(base, exp_id, fin.info.run_id),
                 "train_confusion_matrix": f"{base}/#/experiments/{exp_id}/runs/"
                                           f"{fin.info.run_id}/artifacts/classification/"
                                           f"confusion_matrix.png?workflowType=machine_learning",
                 "ablation_run": runs_url(base, exp_id, abl.info.run_id),
                 "search_run": runs_url(base, exp_id, study.info.run_id),
                 "trial_run": runs_url(base, exp_id, trial.info.run_id),
                 "experiment_default": f"{base}/#/experiments/{exp_id}"}
        for name, url in shots.items():
            path = ARTIFACTS / f"{name}.png"
            path.unlink(missing_ok=True)
            _browse(url, profile, screenshot=path)
            assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000, name
    finally:
        _stop(proc)
        log.close()
    assert proc.poll() is not None
