"""`cnnexp report` with no argument opens on the routine's answer: start recipe -> tuned
recipe, both test figures with their SE, the confirm verdict, and time per step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["data.subset=150", "train.epochs=2"]


def test_report_pairs_the_tuned_and_the_start_recipe(cli, mlflow_client) -> None:
    res = cli("search", *SMALL, "search.stages.coarse.epochs=1", "search.stages.fine.epochs=1",
              "search.confirm.seeds=2", "search.confirm.epochs=1", "--trials", "2", "--json")
    assert res.exit_code == 0, res.stderr
    found = res.json()
    best = yaml.safe_load(Path(found["best_recipe_path"]).read_text())
    # the search's time counts every stage, the confirming one included
    [parent] = mlflow_client.search_runs(
        [e.experiment_id for e in mlflow_client.search_experiments()],
        f"tags.`optuna.study` = '{found['study']}' and tags.`cnnexp.kind` = 'search'")
    wall = (parent.info.end_time - parent.info.start_time) / 1000
    confirm = mlflow_client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
        "and tags.`cnnexp.kind` = 'confirm'")
    confirming = sum((r.info.end_time - r.info.start_time) / 1000 for r in confirm)
    assert len(confirm) == 4 and confirming <= found["seconds"] <= wall, (
        confirming, found["seconds"], wall)
    tuned = cli("train", found["best_recipe_path"], "--test", "--json")
    assert tuned.exit_code == 0, tuned.stderr
    # the start recipe trained after the tuned one: the newest test run is not the answer
    start = cli("train", *SMALL, "--test", "--json")
    assert start.exit_code == 0, start.stderr
    t, s = tuned.json()["test"], start.json()["test"]

    rep = cli("report", "--out", "r.html", "--no-log", "--json")
    assert rep.exit_code == 0, rep.stderr
    assert {r["run_id"] for r in rep.json()["runs"]} >= {tuned.json()["run_id"],
                                                         start.json()["run_id"]}
    page = Path("r.html").read_text()
    assert 'alt="start vs tuned curves"' in page  # the two runs' curves, overlaid
    summary = page[page.index("<h2>Summary</h2>"):page.index("Next step")]
    headline = summary[:summary.index("</b>")]
    assert f"Tuned: test_acc {t['test_acc']:.4f} ± {t['test_acc_se']:.4f}" in headline
    assert f"start recipe: test_acc {s['test_acc']:.4f} ± {s['test_acc_se']:.4f}" in headline
    assert f"difference {(t['test_acc'] - s['test_acc']) * 100:+.2f} pp (combined SE" in headline
    # the tuned values, from the recipe's to best.yaml's
    lr = best["opt"]["lr"]
    assert re.search(rf"opt\.lr 0\.05 → {lr:.3g}", summary), summary
    assert "over 2 seeds:" in summary and found["confirm"]["verdict"] in summary
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>[^<]*</td><td>([^<]*)</td>", summary))
    assert rows["Sanity"] == "" and rows["Ablation"] == ""  # not run: no time
    for step in ("Search", "Final test figure (tuned recipe)", "Start recipe&#x27;s test figure"):
        assert re.fullmatch(r"\d+ s|\d+\.\d min", rows[step]), (step, rows)
    assert "Routine time (sanity + search + final run): —" in page  # sanity not run
    assert "experiments digits, " in page  # the header names every experiment it covers

    # the recipe's experiment finds its search, recorded in the study's own experiment
    by_name = cli("report", "digits", "--out", "d.html", "--no-log", "--json")
    assert by_name.exit_code == 0, by_name.stderr
    assert "search" in {r["kind"] for r in by_name.json()["runs"]}
    assert "<td>Search</td><td>not run</td>" not in Path("d.html").read_text()


def test_start_values_are_logged_on_the_search_run(cli, mlflow_client) -> None:
    res = cli("search", *SMALL, "opt.lr=0.07", "search.stages.coarse.epochs=1", "--stages",
              "coarse", "--no-confirm", "--trials", "2", "--json")
    assert res.exit_code == 0, res.stderr
    study = res.json()["study"]
    [run] = mlflow_client.search_runs(
        [e.experiment_id for e in mlflow_client.search_experiments()],
        f"tags.`optuna.study` = '{study}' and tags.`cnnexp.kind` = 'search'")
    assert run.data.params["search.start.opt.lr"] == "0.07"  # the override, not the file's
