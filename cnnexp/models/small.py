"""Small classic nets: small_cnn (the default) and LeNet-5."""

from __future__ import annotations

from torch import nn

from cnnexp.models.layers import activation, conv_norm_act, head, norm2d
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


@MODELS.register("small_cnn")
def small_cnn(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    w = cfg.width
    return nn.Sequential(
        conv_norm_act(cfg, spec.channels, w), conv_norm_act(cfg, w, w),
        nn.MaxPool2d(2, ceil_mode=True),
        conv_norm_act(cfg, w, 2 * w), conv_norm_act(cfg, 2 * w, 2 * w),
        nn.MaxPool2d(2, ceil_mode=True),
        conv_norm_act(cfg, 2 * w, 4 * w),
        head(4 * w, spec.num_classes, spec.dropout),
    )


@MODELS.register("lenet5")
def lenet5(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    """LeNet-5 on any input size: 5x5 convs with padding 2, pooling, then an adaptive pool to
    5x5 so the classic 16*5*5 -> 120 -> 84 -> C classifier applies."""
    c1, c2 = cfg.width, cfg.width * 16 // 6
    return nn.Sequential(
        nn.Conv2d(spec.channels, c1, 5, padding=2), norm2d(cfg.norm, c1), activation(cfg.activation),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Conv2d(c1, c2, 5, padding=2), norm2d(cfg.norm, c2), activation(cfg.activation),
        nn.AdaptiveAvgPool2d(5), nn.Flatten(),
        nn.Linear(c2 * 25, 120), activation(cfg.activation),
        nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity(),
        nn.Linear(120, 84), activation(cfg.activation),
        nn.Linear(84, spec.num_classes),
    )
