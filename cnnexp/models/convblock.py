"""The course's CIFAR-100 "ConvBlock" net: factorised 1x3/3x1 convs, strided-conv downsampling.

    ConvBlock(32) ConvBlock(32) Sub(32)  ConvBlock(128) ConvBlock(128) Sub(128)  AvgPool Linear
    ConvBlock: 2x [Conv(1x3)-(BN)-ReLU-Conv(3x1)-(BN)-ReLU];  Sub: Conv(3x3, stride 2)-(BN)-ReLU
"""

from __future__ import annotations

from torch import nn

from cnnexp.models.layers import conv_norm_act, head
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


def conv_block(cfg: ArchCfg, c_in: int, c_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [conv_norm_act(cfg, c_in, c_out, kernel=(1, 3)),
                   conv_norm_act(cfg, c_out, c_out, kernel=(3, 1))]
        c_in = c_out
    return nn.Sequential(*layers)


@MODELS.register("convblock")
def convblock(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    w1, w2 = cfg.width, cfg.width * 4
    return nn.Sequential(
        conv_block(cfg, spec.channels, w1), conv_block(cfg, w1, w1),
        conv_norm_act(cfg, w1, w1, stride=2),
        conv_block(cfg, w1, w2), conv_block(cfg, w2, w2),
        conv_norm_act(cfg, w2, w2, stride=2),
        head(w2, spec.num_classes, spec.dropout),
    )
