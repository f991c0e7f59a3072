"""Any torchvision classification model with its head replaced; weights only from a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnexp.errors import BadInput, unknown
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


def _replace_head(model: nn.Module, num_classes: int, dropout: float) -> nn.Module:
    """Swap the last Linear layer (fc / classifier[-1] / heads.head) for one with C outputs."""
    parent, attr, last = None, None, None
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                parent, attr, last = module, child_name, child
        del name
    if last is None:
        raise BadInput("zoo model has no linear classifier to replace")
    new = nn.Linear(last.in_features, num_classes)
    setattr(parent, attr, nn.Sequential(nn.Dropout(dropout), new) if dropout > 0 else new)
    return new


@MODELS.register("zoo")
def zoo(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if cfg.zoo_model not in names:
        raise unknown("torchvision model", cfg.zoo_model, names)
    model = torchvision.models.get_model(cfg.zoo_model, weights=None)
    if cfg.weights_path:
        path = Path(cfg.weights_path).expanduser()
        if not path.is_file():
            raise BadInput(f"arch.weights_path not found: {cfg.weights_path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a corrupt or non-tensor file
            raise BadInput(f"cannot load weights from {path}: {exc}".splitlines()[0]) from None
        own = model.state_dict()
        # keep tensors whose shapes fit: a checkpoint's head may have another class count
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if len(usable) < len(own) // 2:
            raise BadInput(f"{path} does not hold weights for {cfg.zoo_model}")
        model.load_state_dict(usable, strict=False)
    new_head = _replace_head(model, spec.num_classes, spec.dropout)
    if cfg.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in new_head.parameters():
            p.requires_grad_(True)
    if spec.channels != 3:  # grey images: repeat to 3 channels in front of the model
        model = nn.Sequential(_RepeatChannels(3), model)
    return model


class _RepeatChannels(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x
