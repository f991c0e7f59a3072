"""ResNets for small images: CIFAR ResNet-20/32/56 (6n+2) and ResNet-18/34 (3x3 stem)."""

from __future__ import annotations

import torch
from torch import nn

from cnnexp.errors import BadInput
from cnnexp.models.layers import activation, conv_norm_act, head, norm2d
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


class BasicBlock(nn.Module):
    def __init__(self, cfg: ArchCfg, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_act(cfg, c_in, c_out, stride=stride),
            conv_norm_act(cfg, c_out, c_out, act=False),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=cfg.norm == "none"),
                norm2d(cfg.norm, c_out))
        self.act = activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


_IMAGENET_STYLE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def _blocks_per_stage(depth: int) -> list[int]:
    if depth in _IMAGENET_STYLE:
        return _IMAGENET_STYLE[depth]
    if (depth - 2) % 6 == 0 and depth >= 8:
        return [(depth - 2) // 6] * 3
    raise BadInput(f"resnet depth {depth} not supported: use 6n+2 (20, 32, 56, 110) or 18, 34")


@MODELS.register("resnet")
def resnet(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    blocks = _blocks_per_stage(cfg.depth)
    layers: list[nn.Module] = [conv_norm_act(cfg, spec.channels, cfg.width)]
    c_in = cfg.width
    for stage, n in enumerate(blocks):
        c_out = cfg.width * 2**stage
        for i in range(n):
            layers.append(BasicBlock(cfg, c_in, c_out, stride=2 if stage > 0 and i == 0 else 1))
            c_in = c_out
    layers.append(head(c_in, spec.num_classes, spec.dropout))
    return nn.Sequential(*layers)
