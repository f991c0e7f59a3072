"""`airbench`: the network of the fastest public CIFAR-10 trainer (Keller Jordan's airbench94,
2024), without its frozen whitening layer: a 2x2 conv stem, three conv groups
(conv-pool-BN-GELU-conv-BN-GELU) of widths 64/256/256 (x width/64), max-pool, and a bias-free
linear head scaled by 1/9 so the initial logits are small."""

from __future__ import annotations

import torch
from torch import nn

from cnnexp.models.layers import activation, norm2d
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


def _group(cfg: ArchCfg, c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2, ceil_mode=True),
        norm2d(cfg.norm, c_out), activation(cfg.activation),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        norm2d(cfg.norm, c_out), activation(cfg.activation))


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@MODELS.register("airbench")
def airbench(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    w1, w2 = cfg.width, cfg.width * 4
    stem = 24 if spec.channels == 3 else 8
    return nn.Sequential(
        nn.Conv2d(spec.channels, stem, 2, padding=1), activation(cfg.activation),
        _group(cfg, stem, w1), _group(cfg, w1, w2), _group(cfg, w2, w2),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity(),
        nn.Linear(w2, spec.num_classes, bias=False), _Scale(1 / 9),
    )
