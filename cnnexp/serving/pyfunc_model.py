"""The MLflow pyfunc model of a cnnexp run ("models from code": MLflow stores this file with
the model and runs it at load time, so loading needs mlflow, torch, numpy and pandas, not
cnnexp). Input: uint8 images (N, H, W, C), or (N, H, W) for one channel, at the model's size.
Output: one row per image, one column of probability per class."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch


class CnnexpClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        with open(context.artifacts["meta"], encoding="utf-8") as fh:
            self.meta = json.load(fh)
        import warnings

        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, not gone
            warnings.simplefilter("ignore", FutureWarning)
            self.model = torch.jit.load(context.artifacts["torchscript"], map_location="cpu")
        self.model.eval()

    # no type hints on predict: MLflow would read them as a schema; the signature logged
    # with the model (a uint8 tensor of the model's shape) is the schema
    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input)
        m = self.meta
        if x.ndim == 3 and m["channels"] == 1:
            x = x[..., None]
        want = (m["image_size"], m["image_size"], m["channels"])
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected uint8 images of shape (N, {want[0]}, {want[1]}, "
                             f"{want[2]}), got {tuple(x.shape)}")
        batch = int((params or {}).get("batch_size", 256))
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                chunk = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.uint8))
                out.append(self.model(chunk).numpy())
        probs = np.concatenate(out) if out else np.zeros((0, len(m["classes"])), np.float32)
        return pd.DataFrame(probs.astype(np.float64), columns=m["classes"])


mlflow.models.set_model(CnnexpClassifier())
