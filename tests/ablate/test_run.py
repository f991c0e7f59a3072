"""Real ablations on digits into a temporary MLflow store: rows, nesting, artifacts, resume,
divergence and per-arm LR retuning. Tiny budgets (small subset, 1-2 epochs) keep it fast."""

from __future__ import annotations

import csv
import html
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cnnexp.tracking.tags import KIND

QUICK = ["train.epochs=2", "data.subset=256"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: creating a SQLite store costs seconds. Each test
    uses its own spec name, hence its own experiment."""
    return tmp_path_factory.mktemp("store") / "mlflow.db"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_store: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{shared_store}")
    return tmp_path


@pytest.fixture
def mlflow_client(workdir: Path, shared_store: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{shared_store}")


def _runs(client: MlflowClient, spec: str, kind: str) -> list:
    exp = client.get_experiment_by_name(f"ablation-{spec}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get(KIND) == kind]


def test_leave_one_out_on_digits_tracks_nested_runs_and_artifacts(cli, mlflow_client, workdir: Path) -> None:
    res = cli("ablate", *QUICK, "--seeds", "2", "--out", "abl", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["baseline"] == "baseline" and out["metric"] == "val_acc"
    arms = ["baseline", "no augmentation", "no weight decay", "no batchnorm", "with label smoothing"]
    assert [r["arm"] for r in out["rows"]] == arms
    for row in out["rows"]:
        assert row["n"] == 2 and 0.0 <= row["mean"] <= 1.0 and row["std"] is not None
        assert row["params"] > 0 and row["seconds"] > 0
        assert {"delta", "p_value", "verdict", "train_val_gap"} <= set(row)
    assert out["rows"][0]["verdict"] == "reference"
    assert all(r["verdict"] in {"helps", "hurts", "within noise"} for r in out["rows"][1:])
    assert out["rows"][3]["params"] < out["rows"][0]["params"]  # no BN parameters

    name = "digits_components"
    parent, = _runs(mlflow_client, name, "ablation")
    arm_runs = _runs(mlflow_client, name, "ablation-arm")
    seed_runs = _runs(mlflow_client, name, "ablation-seed")
    assert parent.info.run_name == "ablation digits_components"
    assert len(arm_runs) == 5 and len(seed_runs) == 10
    assert {r.data.tags["mlflow.parentRunId"] for r in arm_runs} == {parent.info.run_id}
    arm_ids = {r.data.tags["cnnexp.arm"]: r.info.run_id for r in arm_runs}
    # each arm run carries its row of the table, for the MLflow arms view (tracking/views.py)
    by_arm = {r.data.tags["cnnexp.arm"]: r for r in arm_runs}
    for row in out["rows"]:
        run = by_arm[row["arm"]]
        assert run.data.tags["cnnexp.verdict"] == row["verdict"]
        assert run.data.metrics["std"] == pytest.approx(row["std"], abs=5e-5)
        if row["arm"] != "baseline":
            assert run.data.metrics["delta_pp"] == pytest.approx(row["delta"] * 100, abs=0.005)
            assert run.data.metrics["p_value"] == pytest.approx(row["p_value"], rel=0.05)
    assert "delta_pp" not in by_arm["baseline"].data.metrics
    # `cnnexp ui` lists the experiment's arms view, not views of kinds it does not hold
    from cnnexp.tracking.ui import experiment_links

    exp_id = parent.info.experiment_id
    links = "\n".join(experiment_links("http://h"))
    assert (f"    ablation arms: http://h/#/experiments/{exp_id}/runs"
            "?workflowType=machine_learning&viewStateShareKey=cnnexp-arms") in links
    assert "training runs:" not in links and "search trials:" not in links
    for r in seed_runs:
        assert r.data.tags["mlflow.parentRunId"] == arm_ids[r.data.tags["cnnexp.arm"]]
        assert r.info.status == "FINISHED" and r.data.params["train.epochs"] == "2"
    assert {r.data.tags["cnnexp.seed"] for r in seed_runs} == {"0", "1"}
    # metric history per epoch on the seed runs
    hist = mlflow_client.get_metric_history(seed_runs[0].info.run_id, "val_acc")
    assert [m.step for m in hist] == [1, 2]

    # the description is table.md with each cell padded for MLflow's renderer
    description = parent.data.tags["mlflow.note.content"]
    assert "| \u00a0Arm\u00a0 |" in description
    description = description.replace("\u00a0", "")
    assert "| Arm |" in description and "no batchnorm" in description
    artifacts = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id, "ablation")}
    assert {"ablation/table.md", "ablation/table.csv", "ablation/table.html",
            "ablation/chart.png", "ablation/seeds.csv", "ablation/summary.json"} <= artifacts
    folder = workdir / "abl"
    assert out["table_path"] == str(Path("abl") / "table.md")
    assert (folder / "table.md").read_text() == description
    with (folder / "table.csv").open() as fh:
        assert [row["arm"] for row in csv.DictReader(fh)] == arms
    assert (folder / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table>" in (folder / "table.html").read_text()
    # the report overlays each arm's curves (mean over its seeds): one glance for (e)
    from cnnexp.report import overlay

    rep = cli("report", parent.info.run_id, "--out", "r.html", "--no-log")
    assert rep.exit_code == 0, rep.stderr
    assert 'alt="ablation arms&#x27; curves"' in Path("r.html").read_text()
    means = overlay.mean_history([overlay.history(r.info.run_id) for r in seed_runs
                                  if r.data.tags["cnnexp.arm"] == "baseline"])
    vals = [m.value for r in seed_runs if r.data.tags["cnnexp.arm"] == "baseline"
            for m in mlflow_client.get_metric_history(r.info.run_id, "val_acc") if m.step == 2]
    assert [h["epoch"] for h in means] == [1, 2]
    assert means[-1]["val_acc"] == pytest.approx(sum(vals) / 2)


def _spec(workdir: Path, name: str, extra: str = "") -> str:
    path = workdir / f"{name}.yaml"
    path.write_text("baseline: digits\nseeds: 2\noverrides: {train.epochs: 1, data.subset: 192}\n"
                    "arms:\n  'no augmentation': {aug: none}\n" + extra)
    return str(path)


def test_resume_reuses_finished_runs_and_retrains_unfinished(cli, mlflow_client, workdir: Path) -> None:
    name = "resume"
    spec = _spec(workdir, name)
    first = cli("ablate", "--spec", spec, "--seeds", "1", "--json")
    assert first.exit_code == 0, first.stderr
    assert len(_runs(mlflow_client, name, "ablation-seed")) == 2
    # an interrupted run never got its final status tag: it must be trained again
    unfinished = next(r for r in _runs(mlflow_client, name, "ablation-seed")
                      if r.data.tags["cnnexp.arm"] == "no augmentation")
    mlflow_client.delete_tag(unfinished.info.run_id, "cnnexp.status")

    second = cli("ablate", "--spec", spec, "--seeds", "2", "--resume", "--json")
    assert second.exit_code == 0, second.stderr
    seeds = _runs(mlflow_client, name, "ablation-seed")
    # 2 from the first run + seed 1 of both arms + seed 0 of the unfinished arm again
    assert len(seeds) == 5
    assert second.json()["out_dir"].startswith(str(Path("outputs") / "ablate" / "resume-"))
    with (Path(second.json()["out_dir"]) / "seeds.csv").open() as fh:
        reused = {(r["arm"], r["seed_index"]): r["reused"] for r in csv.DictReader(fh)}
    assert reused == {("baseline", "0"): "True", ("baseline", "1"): "False",
                      ("no augmentation", "0"): "False", ("no augmentation", "1"): "False"}
    base0 = next(r for r in _runs(mlflow_client, name, "ablation-seed")
                 if r.data.tags["cnnexp.arm"] == "baseline" and r.data.tags["cnnexp.seed"] == "0")
    assert second.json()["rows"][0]["values"][0] == base0.data.metrics["final_val_acc"]

    third = cli("ablate", "--spec", spec, "--seeds", "2", "--resume", "--json")
    assert third.exit_code == 0 and len(_runs(mlflow_client, name, "ablation-seed")) == 5
    assert [r["mean"] for r in third.json()["rows"]] == pytest.approx(
        [r["mean"] for r in second.json()["rows"]], rel=1e-6)  # read back at 7 digits


def test_diverged_arm_is_in_the_table(cli, workdir: Path) -> None:
    spec = _spec(workdir, "diverge", "  'huge lr': {opt.lr: 1.0e+8, opt.warmup_epochs: 0}\n")
    res = cli("ablate", "--spec", spec, "--json")
    assert res.exit_code == 0, res.stderr
    row = res.json()["rows"][-1]
    assert row["arm"] == "huge lr" and row["verdict"] == "diverged" and row["n"] == 0
    assert row["mean"] is None
    assert "diverged" in Path(res.json()["table_path"]).read_text()
    # the report's summary names the diverged arm, never counts it "within noise"
    rep = cli("report", "--out", "r.html", "--no-log")
    assert rep.exit_code == 0, rep.stderr
    page = html.unescape(Path("r.html").read_text())
    assert "huge lr: diverged (2 of 2 seeds)" in page


def test_retune_lr_gives_each_arm_its_own_lr(cli, mlflow_client, workdir: Path) -> None:
    name = "retune"
    spec = _spec(workdir, name, "retune: {trials: 2, epochs: 1, factor: 4}\n")
    res = cli("ablate", "--spec", spec, "--retune-lr", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["retuned_lr"] is True
    for row in out["rows"]:
        assert 0.05 / 4 <= row["lr"] <= 0.05 * 4
    arm_runs = _runs(mlflow_client, name, "ablation-arm")
    assert {float(r.data.tags["cnnexp.tuned_lr"]) for r in arm_runs} == \
        {r["lr"] for r in out["rows"]}
    seed_lrs = {(r.data.tags["cnnexp.arm"], float(r.data.params["opt.lr"]))
                for r in _runs(mlflow_client, name, "ablation-seed")}
    assert seed_lrs == {(r["arm"], r["lr"]) for r in out["rows"]}
    table = Path(out["table_path"]).read_text()
    assert "LR (retuned)" in table and "LR retuned per arm" in table


def test_ctrl_c_keeps_finished_runs_for_resume(cli, mlflow_client, workdir: Path) -> None:
    from cnnexp.ablate.run import Options, prepare, run_ablation

    name = "interrupt"
    spec_path = _spec(workdir, name)
    said: list[str] = []

    def interrupt_after_two(message: str) -> None:  # Ctrl-C after the second finished run
        said.append(message)
        if len(said) == 2:
            raise KeyboardInterrupt

    ablation, spec, arms = prepare(spec_path, None, [])
    with pytest.raises(KeyboardInterrupt):
        run_ablation(ablation, spec, arms, Options(say=interrupt_after_two, out=workdir / "x"))
    parent, = _runs(mlflow_client, name, "ablation")
    assert parent.info.status == "KILLED"
    assert len(_runs(mlflow_client, name, "ablation-seed")) == 2

    res = cli("ablate", "--spec", spec_path, "--resume", "--json")
    assert res.exit_code == 0, res.stderr
    assert len(_runs(mlflow_client, name, "ablation-seed")) == 4  # only the missing two trained
    assert [r["n"] for r in res.json()["rows"]] == [2, 2]


def test_resume_ends_runs_an_earlier_stop_left_running(cli, mlflow_client, workdir: Path) -> None:
    """A full disk mid-ablate can leave the parent, an arm and a seed run RUNNING (the store
    could not take their end); --resume ends them FAILED and leaves nothing RUNNING."""
    name = "leftover"
    spec = _spec(workdir, name)
    assert cli("ablate", "--spec", spec, "--seeds", "1", "--json").exit_code == 0
    left = [_runs(mlflow_client, name, kind)[0] for kind in
            ("ablation", "ablation-arm", "ablation-seed")]
    for r in left:  # the state such a stop leaves
        mlflow_client.update_run(r.info.run_id, status="RUNNING")

    res = cli("ablate", "--spec", spec, "--seeds", "1", "--resume", "--json")
    assert res.exit_code == 0, res.stderr
    for r in left:
        now = mlflow_client.get_run(r.info.run_id)
        assert now.info.status == "FAILED"
        assert now.data.tags["cnnexp.reason"].startswith("left RUNNING by an earlier stop")
    kinds = ("ablation", "ablation-arm", "ablation-seed")
    assert all(r.info.status != "RUNNING" for k in kinds for r in _runs(mlflow_client, name, k))
