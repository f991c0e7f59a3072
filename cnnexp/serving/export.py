"""`cnnexp export`: a logged model as one file plain PyTorch loads (no MLflow, no cnnexp)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from cnnexp.errors import BadInput
from cnnexp.serving.mlflow_model import local_model, rebuilt
from cnnexp.serving.package import save_exported

SUFFIXES = (".ts", ".pt2")


def export(model_ref: str, out: Path) -> Path:
    if out.suffix not in SUFFIXES:
        raise BadInput(f"--out {out}: name it model.ts (TorchScript) or model.pt2 "
                       "(torch.export)")
    if out.exists() and out.is_dir():
        raise BadInput(f"--out {out} is a folder; give a file name ending in .ts or .pt2")
    folder = local_model(model_ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".ts":  # the logged TorchScript, meta.json embedded, as it is
        shutil.copyfile(folder / "artifacts" / "model.ts", out)
        return out
    if not (folder / "artifacts" / "weights.pt").is_file():
        raise BadInput(f"model {model_ref!r} has no weights.pt (logged by an older cnnexp): "
                       "export it as model.ts")
    module, info = rebuilt(folder)
    return save_exported(module, info, out)


def read_meta(path: Path) -> dict:
    """meta.json embedded in an exported file (for tests and tools)."""
    if path.suffix == ".ts":
        extra = {"meta.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra["meta.json"])
    extra = {"meta.json": ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra["meta.json"])
