"""`cnnexp train` end to end into a real temporary MLflow store, and its bad-input contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def test_train_digits_tracked_in_mlflow(cli, mlflow_client) -> None:
    res = cli("train", "train.epochs=2", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    for key in ("run_id", "experiment_id", "epochs", "train_loss", "train_acc", "val_loss",
                "val_acc", "best_val_acc", "seconds", "images_per_sec"):
        assert key in out
    assert out["epochs"] == 2 and out["val_acc"] > 0.5
    run = mlflow_client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["opt.lr"] == "0.05" and run.data.params["arch.model"] == "small_cnn"
    assert run.data.tags["cnnexp.arch"] == "small_cnn" and run.data.tags["cnnexp.data"] == "digits"
    hist = mlflow_client.get_metric_history(out["run_id"], "val_acc")
    assert [m.step for m in hist] == [1, 2]
    assert hist[-1].value == pytest.approx(out["val_acc"])
    for name in ("train_loss", "train_acc", "val_loss", "lr", "epoch_seconds"):
        assert len(mlflow_client.get_metric_history(out["run_id"], name)) == 2
    recipe_text = mlflow_client.download_artifacts(out["run_id"], "recipe.yaml")
    assert "small_cnn" in Path(recipe_text).read_text()
    assert run.inputs.dataset_inputs[0].dataset.name == "digits"
    assert mlflow_client.get_experiment(out["experiment_id"]).name == "digits"


def test_train_is_reproducible_on_cpu(cli) -> None:
    a = cli("train", "train.epochs=1", "--json", "--no-track").json()
    b = cli("train", "train.epochs=1", "--json", "--no-track").json()
    c = cli("train", "train.epochs=1", "--json", "--no-track", "--seed", "3").json()
    assert a["val_loss"] == b["val_loss"] and a["val_loss"] != c["val_loss"]


def test_experiment_option_and_log_model(cli, mlflow_client) -> None:
    out = cli("train", "train.epochs=1", "--experiment", "mine", "--log-model", "--json").json()
    assert mlflow_client.get_experiment(out["experiment_id"]).name == "mine"
    # an MLflow model now (tests/serving): the network's weights travel inside it
    path = mlflow_client.download_artifacts(out["run_id"], "model/artifacts/weights.pt")
    state = torch.load(path, weights_only=True)
    assert any(k.endswith("weight") for k in state)
    assert out["model"]["model_uri"] == f"runs:/{out['run_id']}/model"


def test_human_output_is_a_summary(cli) -> None:
    res = cli("train", "train.epochs=1", "--no-track")
    assert res.exit_code == 0 and "val_acc" in res.stdout


def test_diverging_run_ends_failed_with_reason(cli, mlflow_client) -> None:
    res = cli("train", "opt.lr=1e6", "train.epochs=3", "--json")
    assert res.exit_code == 1
    out = res.json()
    assert out["status"] == "diverged" and out["epochs"] == 1
    run = mlflow_client.get_run(out["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["cnnexp.status"] == "diverged"


@pytest.mark.parametrize(("args", "message"), [
    (["opt.lrr=0.1"], "unknown key 'opt.lrr' (did you mean 'opt.lr'?)"),
    (["arch=resnet"], "unknown arch component 'resnet'"),
    (["digitz"], "unknown experiment recipe 'digitz' (did you mean 'digits'?)"),
    (["train.epochs=-1"], "invalid value for 'train.epochs'"),
    (["train.epochs=two"], "invalid value for 'train.epochs'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["missing.yaml"], "recipe file not found: missing.yaml"),
    (["data=imagefolder", "data.path=nowhere"], "data.path 'nowhere' is not a folder"),
])
def test_bad_input_exits_2_with_one_line_and_no_run(cli, mlflow_client, workdir, args,
                                                    message) -> None:
    res = cli("train", *args, "--json")
    assert res.exit_code == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert res.json() == {"error": res.stderr.strip().removeprefix("error: "), "exit_code": 2}
    exps = mlflow_client.search_experiments() if (workdir / "mlflow.db").exists() else []
    assert all(not mlflow_client.search_runs([e.experiment_id]) for e in exps)


def test_malformed_yaml_via_cli(cli, workdir) -> None:
    (workdir / "bad.yaml").write_text("defaults: [oops\n")
    res = cli("train", "bad.yaml")
    assert res.exit_code == 2 and "malformed YAML in bad.yaml:" in res.stderr


def _write_pngs(root: Path, classes: int = 3, per_class: int = 12) -> None:
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = torch.randint(0, 60, (20, 20, 3), generator=gen, dtype=torch.uint8)
            arr[:, :, c] += 180  # each class has its own dominant colour
            Image.fromarray(arr.numpy()).save(root / f"class{c}" / f"{i}.png")


def test_imagefolder_trains_one_epoch(cli, workdir) -> None:
    _write_pngs(workdir / "imgs")
    res = cli("train", "data=imagefolder", "data.path=imgs", "data.resize=16",
              "data.num_workers=0", "arch=lenet5", "aug=flip_translate", "train.epochs=1",
              "train.batch_size=8", "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["epochs"] == 1


def test_imagefolder_bad_inputs(cli, workdir) -> None:
    (workdir / "empty" / "a").mkdir(parents=True)
    (workdir / "empty" / "b").mkdir(parents=True)
    res = cli("train", "data=imagefolder", "data.path=empty")
    assert res.exit_code == 2 and "holds no images" in res.stderr
    _write_pngs(workdir / "imgs", classes=2, per_class=3)
    (workdir / "imgs" / "class0" / "broken.png").write_bytes(b"not an image at all")
    res = cli("train", "data=imagefolder", "data.path=imgs")
    assert res.exit_code == 2 and "unreadable image" in res.stderr and "broken.png" in res.stderr


def test_recipes_show_and_list(cli) -> None:
    res = cli("recipes", "show", "shapes", "opt.lr=0.01")
    assert res.exit_code == 0 and "lr: 0.01" in res.stdout and "model: resnet" in res.stdout
    listing = cli("recipes", "list", "--json").json()
    assert "digits" in listing["experiments"] and "resnet20" in listing["arch"]
    assert cli("recipes", "show", "nope").exit_code == 2
