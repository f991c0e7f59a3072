"""`cnnexp sanity` and `cnnexp lr-find` end to end into a real temporary MLflow store, and
their bad-input contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cnnexp.tracking.tags import KIND

ORDER = ["data", "init-loss", "reg-loss", "grad-flow", "overfit", "lr-range"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _children(client, parent_id: str, experiment_id: str) -> dict:
    runs = client.search_runs([experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return {r.info.run_name: r for r in runs}


def test_sanity_logs_parent_and_nested_runs_with_plots(cli, mlflow_client) -> None:
    res = cli("sanity", "--checks", "lr-range,data,init-loss", "--lr-steps", "40", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["passed"] is True
    assert [c["name"] for c in out["checks"]] == ["data", "init-loss", "lr-range"]
    for c in out["checks"]:
        assert c["status"] in ("pass", "warn") and {"measured", "expected", "hint"} <= set(c)
    init = out["checks"][1]
    assert abs(init["loss"] - math.log(10)) < 0.1 * math.log(10)
    lr = out["checks"][2]
    assert lr["suggested_lr"] > 0 and lr["steps"] <= 40 and isinstance(lr["agree"], bool)
    assert set(lr["suggestions"]) <= {"valley", "steepest", "min/10"}
    parent = mlflow_client.get_run(out["run_id"])
    assert parent.info.run_name == "sanity" and parent.info.status == "FINISHED"
    assert parent.data.tags[KIND] == "sanity"
    assert "| init-loss |" in parent.data.tags["mlflow.note.content"].replace("\u00a0", "")
    kids = _children(mlflow_client, out["run_id"], out["experiment_id"])
    assert set(kids) == {"data", "init-loss", "lr-range"}
    assert kids["init-loss"].data.metrics["init_loss"] == pytest.approx(init["loss"])
    assert kids["lr-range"].data.metrics["suggested_lr"] == pytest.approx(lr["suggested_lr"])
    arts = {name: {a.path for a in mlflow_client.list_artifacts(r.info.run_id)}
            for name, r in kids.items()}
    assert {"class_histogram.png", "augmented_samples.png"} <= arts["data"]
    assert {"lr_range.png", "lr_range.csv", "check.json"} <= arts["lr-range"]
    saved = json.loads(Path(mlflow_client.download_artifacts(
        kids["init-loss"].info.run_id, "check.json")).read_text())
    assert saved["status"] == init["status"]


def test_broken_init_fails_init_loss_with_exit_1(cli, mlflow_client) -> None:
    res = cli("sanity", "arch.init=normal", "arch.init_std=1.0", "--checks",
              "init-loss,reg-loss", "--json")
    assert res.exit_code == 1
    out = res.json()
    assert out["passed"] is False
    init = out["checks"][0]
    assert init["name"] == "init-loss" and init["status"] == "fail" and init["hint"]
    assert init["loss"] > 1.1 * math.log(10)
    parent = mlflow_client.get_run(out["run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags["cnnexp.status"] == "failed"
    kids = _children(mlflow_client, out["run_id"], out["experiment_id"])
    assert kids["init-loss"].data.tags["cnnexp.verdict"] == "fail"


def test_diverging_model_fails_its_check_without_crashing(cli) -> None:
    res = cli("sanity", "opt.lr=1e6", "--checks", "overfit", "--json", "--no-track")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    check = res.json()["checks"][0]
    assert check["status"] == "fail" and "diverged" in check["measured"]


def test_human_output_is_a_verdict_table(cli) -> None:
    res = cli("sanity", "--checks", "init-loss", "--no-track")
    assert res.exit_code == 0
    assert "init-loss" in res.stdout and "pass" in res.stdout and "ln(10)" in res.stdout


@pytest.mark.parametrize("argv, message", [
    (["--checks", "init-lose"], "did you mean 'init-loss'"),
    (["--checks", "nope"], "valid: data, grad-flow, init-loss, lr-range, overfit, reg-loss"),
    (["--tiny", "100000"], "has only"),
    (["--tiny", "0", "--checks", "overfit"], "at least 1"),
    (["arch=resnet"], "unknown arch component"),
])
def test_bad_input_exits_2_and_stores_nothing(cli, workdir, argv, message) -> None:
    res = cli("sanity", *argv, "--json")
    assert res.exit_code == 2 and res.json()["exit_code"] == 2  # --json: the error object
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (workdir / "mlflow.db").exists()  # rejected before any run was opened


def test_lr_find_prints_one_json_object_and_logs_the_plot(cli, mlflow_client) -> None:
    res = cli("lr-find", "--steps", "40", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["status"] in ("pass", "warn") and out["suggested_lr"] > 0
    assert out["override"] == f"opt.lr={out['suggested_lr']:.2g}" and out["steps"] <= 40
    run = mlflow_client.get_run(out["run_id"])
    assert run.info.run_name == "lr-find" and run.data.tags[KIND] == "lr-find"
    assert "lr_range.png" in {a.path for a in mlflow_client.list_artifacts(out["run_id"])}


def test_lr_find_bad_range_is_bad_input(cli) -> None:
    res = cli("lr-find", "--start-lr", "1", "--end-lr", "0.001", "--no-track")
    assert res.exit_code == 2 and "must be below --end-lr" in res.stderr


@pytest.mark.parametrize("command", ["sanity", "lr-find"])
def test_help_has_an_example(cli, command: str) -> None:
    res = cli(command, "--help")
    assert res.exit_code == 0 and f"cnnexp {command}" in res.stdout


@pytest.mark.slow
def test_full_sanity_on_the_default_recipe_passes(cli, mlflow_client) -> None:
    res = cli("sanity", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert [c["name"] for c in out["checks"]] == ORDER
    assert all(c["status"] != "fail" for c in out["checks"]), out["checks"]
    overfit = out["checks"][4]
    assert overfit["status"] == "pass" and overfit["steps"] < 300
    kids = _children(mlflow_client, out["run_id"], out["experiment_id"])
    assert set(kids) == set(ORDER)
    for name, png in [("grad-flow", "grad_flow.png"), ("overfit", "overfit.png"),
                      ("lr-range", "lr_range.png")]:
        assert png in {a.path for a in mlflow_client.list_artifacts(kids[name].info.run_id)}


@pytest.mark.slow
@pytest.mark.parametrize("experiment, overrides", [
    ("shapes", ["data.num_samples=300"]),
    ("cifar10_resnet20", ["data=shapes", "data.num_samples=300"]),
    ("cifar100_convblock", ["data=shapes", "data.num_samples=600", "data.num_classes=60",
                            "data.image_size=16"]),
    ("cifar10_fast", ["data=shapes", "data.num_samples=300"]),
])
def test_default_experiments_pass_init_loss(cli, experiment, overrides) -> None:
    res = cli("sanity", experiment, *overrides, "--checks", "init-loss", "--json", "--no-track")
    assert res.exit_code == 0, res.stdout
    check = res.json()["checks"][0]
    assert check["status"] == "pass"


@pytest.mark.slow
def test_huge_init_on_a_deep_net_fails_init_loss(cli) -> None:
    res = cli("sanity", "shapes", "data.num_samples=300", "arch.init=normal",
              "arch.init_std=1.0", "--checks", "init-loss", "--json", "--no-track")
    assert res.exit_code == 1 and res.json()["checks"][0]["status"] == "fail"
