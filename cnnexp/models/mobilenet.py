"""MobileNetV2-style inverted residuals (Sandler et al. 2018) sized for small images."""

from __future__ import annotations

import torch
from torch import nn

from cnnexp.models.layers import conv_norm_act, head
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


class InvertedResidual(nn.Module):
    def __init__(self, cfg: ArchCfg, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_skip = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            conv_norm_act(cfg, c_in, hidden, kernel=1),
            conv_norm_act(cfg, hidden, hidden, stride=stride, groups=hidden),  # depthwise
            conv_norm_act(cfg, hidden, c_out, kernel=1, act=False),  # linear bottleneck
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_skip else out


# (expansion, channels as a multiple of width/2, blocks, stride of the first block)
_STAGES = [(1, 1, 1, 1), (6, 1.5, 2, 1), (6, 2, 3, 2), (6, 4, 4, 2), (6, 6, 3, 1), (6, 10, 3, 2)]


@MODELS.register("mobilenet_v2")
def mobilenet_v2(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    base = cfg.width // 2
    layers: list[nn.Module] = [conv_norm_act(cfg, spec.channels, cfg.width)]
    c_in = cfg.width
    for expand, mult, n, stride in _STAGES:
        c_out = max(8, int(base * mult))
        for i in range(n):
            layers.append(InvertedResidual(cfg, c_in, c_out, stride if i == 0 else 1, expand))
            c_in = c_out
    layers.append(conv_norm_act(cfg, c_in, 4 * cfg.width, kernel=1))
    layers.append(head(4 * cfg.width, spec.num_classes, spec.dropout))
    return nn.Sequential(*layers)
