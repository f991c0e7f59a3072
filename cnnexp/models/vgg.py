"""VGG-style conv3 stacks and All-CNN-C (strided convs, no pooling)."""

from __future__ import annotations

from torch import nn

from cnnexp.models.layers import conv_norm_act, head
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


@MODELS.register("vgg")
def vgg(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    layers: list[nn.Module] = []
    c_in, c_out, size = spec.channels, cfg.width, spec.image_size
    for i, n_convs in enumerate(cfg.stages):
        for _ in range(n_convs):
            layers.append(conv_norm_act(cfg, c_in, c_out))
            c_in = c_out
        if i < len(cfg.stages) - 1 and size > 1:  # pool between stages while there is room
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            size = (size + 1) // 2
            c_out = min(c_out * 2, 16 * cfg.width)
    layers.append(head(c_in, spec.num_classes, spec.dropout))
    return nn.Sequential(*layers)


@MODELS.register("allcnn_c")
def allcnn_c(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    """Springenberg et al.: 3x3 convs, stride-2 convs replace max-pooling, 1x1 conv to classes,
    global average pooling (no linear layer at all)."""
    w1, w2 = cfg.width, cfg.width * 2
    return nn.Sequential(
        conv_norm_act(cfg, spec.channels, w1), conv_norm_act(cfg, w1, w1),
        conv_norm_act(cfg, w1, w1, stride=2),
        conv_norm_act(cfg, w1, w2), conv_norm_act(cfg, w2, w2),
        conv_norm_act(cfg, w2, w2, stride=2),
        conv_norm_act(cfg, w2, w2), conv_norm_act(cfg, w2, w2, kernel=1),
        nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity(),
        nn.Conv2d(w2, spec.num_classes, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
