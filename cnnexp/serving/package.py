"""The model as users call it: uint8 images in (N, H, W, C), class probabilities out. The
data's normalisation and the recipe's test-time augmentation live inside the module, so a
saved copy needs torch alone (TorchScript `.ts`, or torch.export `.pt2`), and gives the same
logits the run's own evaluation gave."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

LAYOUT = "NHWC uint8"  # what the packaged model takes: images as they are read from files


class Packaged(nn.Module):
    """Normalise as the run did, run the network (averaged with the flipped image when the
    recipe evaluates with TTA), softmax."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 tta: bool) -> None:
        super().__init__()
        self.model, self.tta = model, tta
        # the same arithmetic as the engine's Augmenter.normalize on uint8 input
        self.register_buffer("mean", (mean.float().view(1, -1, 1, 1) * 255.0).clone())
        self.register_buffer("inv", (1.0 / (std.float().view(1, -1, 1, 1) * 255.0)).clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.mean) * self.inv
        logits = self.model(x).float()
        if self.tta:
            logits = (logits + self.model(x.flip(3)).float()) / 2
        return torch.softmax(logits, dim=1)


def packaged(model: nn.Module, state: dict[str, Any] | None, data: Any, recipe: Any
             ) -> Packaged:
    """The run's network with the chosen weights (`state`: the best epoch's), on the CPU, in
    evaluation mode, wrapped with its preprocessing."""
    net = copy.deepcopy(model).to("cpu").to(memory_format=torch.contiguous_format)
    if state is not None:
        net.load_state_dict({k: v.to("cpu") for k, v in state.items()})
    net.eval()
    return Packaged(net, data.mean.cpu(), data.std.cpu(), bool(recipe.aug.tta)).eval()


def meta(recipe: Any, data: Any, run_id: str | None, weights: str) -> dict[str, Any]:
    """What a caller needs besides the images (kept beside the weights as meta.json)."""
    return {"format": "cnnexp-model", "version": 1, "input": LAYOUT,
            "image_size": int(data.image_size), "channels": int(data.channels),
            "classes": [str(c) for c in data.classes], "tta": bool(recipe.aug.tta),
            "mean": [float(v) for v in data.mean.flatten()],
            "std": [float(v) for v in data.std.flatten()],
            "recipe": recipe.name, "run_id": run_id, "weights": weights,
            "torch": torch.__version__}


def example(info: dict[str, Any], n: int = 2) -> torch.Tensor:
    return torch.zeros(n, info["image_size"], info["image_size"], info["channels"],
                       dtype=torch.uint8)


def save_torchscript(module: Packaged, info: dict[str, Any], path: Path) -> Path:
    """Traced (the network has no data-dependent control flow), with meta.json inside."""
    with torch.no_grad():
        traced = torch.jit.trace(module, example(info), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"meta.json": json.dumps(info)})
    return path


def save_exported(module: Packaged, info: dict[str, Any], path: Path) -> Path:
    """torch.export with a dynamic batch dimension, meta.json as an extra file."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        program = torch.export.export(module, (example(info),),
                                      dynamic_shapes={"images": {0: batch}})
    torch.export.save(program, str(path), extra_files={"meta.json": json.dumps(info)})
    return path
