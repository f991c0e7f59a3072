"""A run's model in MLflow: logged as a pyfunc model under the run's `model/` artifacts (the
TorchScript module with its preprocessing, meta.json, a signature, an input example and the
pip requirements), optionally registered in the Model Registry, and found again from a run id
(or prefix), a `models:/NAME/VERSION` / `models:/NAME@alias` URI, or a local folder."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnexp.errors import BadInput
from cnnexp.serving.package import meta, packaged, save_torchscript

ARTIFACT = "model"  # the run's artifact folder holding the MLflow model
CODE = Path(__file__).with_name("pyfunc_model.py")


@dataclass
class Logged:
    uri: str  # runs:/RUN/model
    registered: str | None = None  # models:/NAME/VERSION
    version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model_uri": self.uri, "registered_model": self.registered,
                "model_version": self.version}


def log_model(run: Any, recipe: Any, result: Any, data: Any, register: str | None = None
              ) -> Logged:
    """Log the best epoch's weights as an MLflow pyfunc model on `run` (and register it)."""
    import mlflow
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    weights = (f"best epoch {result.best_epoch} by val_acc" if result.best_state is not None
               else f"last epoch {len(result.history)}")
    module = packaged(result.trainer.eval_model, result.best_state, data, recipe)
    info = meta(recipe, data, run.run_id, weights)
    size, ch = info["image_size"], info["channels"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size, ch))]),
        outputs=Schema([ColSpec("double", c) for c in info["classes"]]))
    example = _input_example(data, info)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ts = save_torchscript(module, info, folder / "model.ts")
        (folder / "meta.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        # what `cnnexp export --out model.pt2` rebuilds the Python module from
        torch.save(module.model.state_dict(), folder / "weights.pt")
        from cnnexp.recipe import to_yaml

        (folder / "recipe.yaml").write_text(to_yaml(recipe), encoding="utf-8")
        mlflow.pyfunc.save_model(
            path=str(folder / ARTIFACT), python_model=str(CODE),
            artifacts={"torchscript": str(ts), "meta": str(folder / "meta.json"),
                       "weights": str(folder / "weights.pt"),
                       "recipe": str(folder / "recipe.yaml")},
            signature=signature, input_example=example,
            pip_requirements=[f"mlflow=={mlflow.__version__}",
                              f"torch=={torch.__version__.split('+')[0]}", "numpy", "pandas"],
            metadata={"cnnexp": {k: info[k] for k in ("recipe", "run_id", "classes",
                                                      "image_size", "channels", "tta",
                                                      "weights")}})
        run.client.log_artifacts(run.run_id, str(folder / ARTIFACT), ARTIFACT)
    logged = Logged(f"runs:/{run.run_id}/{ARTIFACT}")
    if register:
        logged = register_model(run, logged, register)
    run.set_tags({"cnnexp.model_uri": logged.uri,
                  **({"cnnexp.registered_model": logged.registered} if logged.registered
                     else {})})
    return logged


def _input_example(data: Any, info: dict[str, Any]) -> Any:
    """Two real validation images, as the model takes them (uint8 N, H, W, C)."""
    x = data.val_x if data.in_memory and data.val_x is not None and len(data.val_x) else None
    if x is None:
        return torch.zeros(2, info["image_size"], info["image_size"], info["channels"],
                           dtype=torch.uint8).numpy()
    return x[:2].permute(0, 2, 3, 1).contiguous().cpu().numpy()


def register_model(run: Any, logged: Logged, name: str) -> Logged:
    """A new version of registered model `name` from this run's model (created if new)."""
    from mlflow.exceptions import MlflowException

    check_model_name(name)
    c = run.client
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Registered by cnnexp train --register")
    version = c.create_model_version(name, logged.uri, run_id=run.run_id,
                                     tags={"cnnexp.run_id": run.run_id})
    return Logged(logged.uri, f"models:/{name}/{version.version}", str(version.version))


def check_model_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,254}", name or ""):
        raise BadInput(f"--register {name!r}: a model name is letters, digits, '_', '-', '.' "
                       "or spaces (at most 255 characters), e.g. fashion-small-cnn")


def local_model(ref: str) -> Path:
    """The model's local folder (MLmodel inside) for a run id or prefix, a models:/ URI, a
    runs:/ URI or a path; BadInput naming what was not found or is not a cnnexp model."""
    path = Path(ref).expanduser()
    if path.exists():
        folder = path if path.is_dir() else path.parent
    else:
        import mlflow
        from mlflow.exceptions import MlflowException

        from cnnexp.tracking import store

        uri = ref
        if not ref.startswith(("models:/", "runs:/")):
            from cnnexp.tracking.query import resolve_run_id

            run_id, _ = resolve_run_id(ref)
            uri = f"runs:/{run_id}/{ARTIFACT}"
        import os

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            folder = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=store.tracking_uri()))
        except (MlflowException, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"model {ref!r}: not found ({first[:200]}); log one with "
                           "`cnnexp train --log-model`") from None
    if not (folder / "MLmodel").is_file():
        raise BadInput(f"model {ref!r}: {folder} holds no MLflow model (no MLmodel file)")
    if not (folder / "artifacts" / "model.ts").is_file():
        raise BadInput(f"model {ref!r}: an MLflow model, but not a cnnexp model (no "
                       "artifacts/model.ts); `cnnexp predict` reads models logged by "
                       "`cnnexp train --log-model`")
    return folder


def load_local(folder: Path, device: torch.device) -> tuple[torch.jit.ScriptModule,
                                                            dict[str, Any]]:
    import warnings

    info = json.loads((folder / "artifacts" / "meta.json").read_text(encoding="utf-8"))
    with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; it still loads
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(folder / "artifacts" / "model.ts"), map_location=device)
    return module.eval(), info


def rebuilt(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The packaged Python module, rebuilt from the logged recipe and weights (for
    torch.export, which cannot trace through a TorchScript module)."""
    from cnnexp.models import ModelSpec, build_model
    from cnnexp.recipe import load_recipe
    from cnnexp.serving.package import Packaged

    info = json.loads((folder / "artifacts" / "meta.json").read_text(encoding="utf-8"))
    recipe = load_recipe(str(folder / "artifacts" / "recipe.yaml"))
    net = build_model(recipe, ModelSpec(info["channels"], len(info["classes"]),
                                        info["image_size"]))
    net.load_state_dict(torch.load(folder / "artifacts" / "weights.pt", map_location="cpu",
                                   weights_only=True))
    return Packaged(net.eval(), torch.tensor(info["mean"]), torch.tensor(info["std"]),
                    info["tta"]).eval(), info
