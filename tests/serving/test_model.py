"""The tuned model, usable: a real MLflow pyfunc model with its preprocessing, registered,
loaded back by MLflow, `cnnexp predict` on image files, and `cnnexp export` loaded by plain
PyTorch in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("one_thread")


def cnnexp(trained, *args: str):
    import os

    from cnnexp.cli import app

    os.environ["MLFLOW_TRACKING_URI"] = trained.uri
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def accuracy(predictions: list[dict]) -> float:
    hits = [p["class"] == Path(p["file"]).stem.split("_")[1] for p in predictions]
    return sum(hits) / len(hits)


def test_registered_model_loads_in_mlflow_and_predicts_from_raw_images(trained) -> None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(trained.uri)
    (version,) = MlflowClient().search_model_versions("name='digits-cnn'")
    assert version.run_id == trained.run_id
    run = MlflowClient().get_run(trained.run_id)
    assert run.data.tags["cnnexp.registered_model"] == "models:/digits-cnn/1"
    model = mlflow.pyfunc.load_model("models:/digits-cnn/1")
    inputs = model.metadata.get_input_schema().inputs[0]
    assert inputs.type == np.dtype(np.uint8) and inputs.shape == (-1, 8, 8, 1)
    from PIL import Image

    files = sorted(trained.images.glob("*.png"))
    x = np.stack([np.asarray(Image.open(f)) for f in files])[..., None]  # (N, 8, 8, 1)
    probs = model.predict(x)
    assert list(probs.columns) == [str(c) for c in range(10)]
    assert np.allclose(probs.to_numpy().sum(1), 1.0, atol=1e-5)
    acc = float((probs.to_numpy().argmax(1) == np.array(trained.labels)).mean())
    assert acc == pytest.approx(trained.test_acc, abs=5e-5)  # same weights, same TTA
    assert model.metadata.metadata["cnnexp"]["tta"] is True


def test_predict_reproduces_the_test_figure_and_names_what_it_skips(trained, tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image")
    res = cnnexp(trained, "predict", trained.run_id[:8], str(trained.images),
                 str(tmp_path / "broken.png"), str(tmp_path / "missing.png"), "--json",
                 "--csv", str(tmp_path / "p.csv"))
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["images"] == len(trained.labels)
    assert accuracy(out["predictions"]) == pytest.approx(trained.test_acc, abs=5e-5)
    assert {s["file"] for s in out["skipped"]} == {str(tmp_path / "broken.png"),
                                                   str(tmp_path / "missing.png")}
    first = out["predictions"][0]
    assert len(first["top"]) == 3 and first["top"][0]["class"] == first["class"]
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "file,class,probability," + ",".join(str(c) for c in range(10))
    # a colour image of another size is converted and resized as the model's data was
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "big.jpg")
    res = cnnexp(trained, "predict", "models:/digits-cnn/1", str(tmp_path / "big.jpg"),
                 "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["images"] == 1
    # the table for a person
    res = cnnexp(trained, "predict", "models:/digits-cnn/1", str(trained.images / "0000_"
                                                                 f"{trained.labels[0]}.png"))
    assert res.exit_code == 0 and "probability" in res.stdout


def test_predict_bad_input_is_one_line_exit_2(trained, tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    res = cnnexp(trained, "predict", "models:/digits-cnn/1", str(tmp_path / "a.png"))
    assert res.exit_code == 2 and "no image could be read" in res.stderr
    res = cnnexp(trained, "predict", "models:/no-such-model/1", str(trained.images))
    assert res.exit_code == 2 and "not found" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # an MLflow model that cnnexp did not make
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    mlflow.pyfunc.save_model(str(tmp_path / "echo"), python_model=Echo())
    res = cnnexp(trained, "predict", str(tmp_path / "echo"), str(trained.images))
    assert res.exit_code == 2 and "not a cnnexp model" in res.stderr


def test_export_loads_in_plain_pytorch_and_matches_predict(trained, tmp_path) -> None:
    for name in ("model.ts", "model.pt2"):
        res = cnnexp(trained, "export", "models:/digits-cnn/1", "--out", str(tmp_path / name))
        assert res.exit_code == 0, res.stderr
    res = cnnexp(trained, "predict", "models:/digits-cnn/1", str(trained.images), "--json")
    expected = [p["probability"] for p in json.loads(res.stdout)["predictions"]]
    code = f"""
import json, sys
from pathlib import Path
import numpy as np, torch
from PIL import Image
files = sorted(Path({str(trained.images)!r}).glob('*.png'))
x = torch.from_numpy(np.stack([np.asarray(Image.open(f)) for f in files])[..., None])
extra = {{'meta.json': ''}}
ts = torch.jit.load({str(tmp_path / 'model.ts')!r}, _extra_files=extra)
ep = torch.export.load({str(tmp_path / 'model.pt2')!r}).module()
with torch.no_grad():
    a, b = ts(x), ep(x)
print(json.dumps({{'ts': a.max(1).values.tolist(), 'pt2': b.max(1).values.tolist(),
                  'classes': json.loads(extra['meta.json'])['classes'],
                  'cnnexp': 'cnnexp' in sys.modules, 'mlflow': 'mlflow' in sys.modules}}))
"""
    out = subprocess.run([sys.executable, "-I", "-W", "ignore", "-c", code],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert not got["cnnexp"] and not got["mlflow"]  # torch alone
    assert got["classes"] == [str(c) for c in range(10)]
    assert np.allclose(got["ts"], expected, atol=1e-6)
    assert np.allclose(got["pt2"], expected, atol=1e-5)
    bad = cnnexp(trained, "export", "models:/digits-cnn/1", "--out", str(tmp_path / "m.onnx"))
    assert bad.exit_code == 2 and "model.ts" in bad.stderr


def test_demo_samples_are_held_out_images_named_by_class(trained, tmp_path) -> None:
    from cnnexp.serving.samples import write_samples

    files = write_samples(tmp_path / "s", 4)
    assert [f.name for f in files] == [f"{i:03d}_{trained.labels[i]}.png" for i in range(4)]
    res = cnnexp(trained, "predict", "models:/digits-cnn/latest", str(tmp_path / "s"),
                 "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["images"] == 4
