"""Building blocks shared by the architectures: norm/activation factories and weight init."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnexp.schema import ArchCfg


def norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # LayerNorm over (C, H, W) == GroupNorm with one group
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


def activation(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[kind]()


def conv_norm_act(cfg: ArchCfg, c_in: int, c_out: int, kernel: int | tuple[int, int] = 3,
                  stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (k[0] // 2, k[1] // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride, pad, groups=groups, bias=cfg.norm == "none"),
        norm2d(cfg.norm, c_out),
    ]
    if act:
        layers.append(activation(cfg.activation))
    return nn.Sequential(*layers)


def head(features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Global average pooling, optional dropout, linear classifier."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        nn.Linear(features, num_classes),
    )


def single_value_batchnorm(model: nn.Module, channels: int, image_size: int) -> str | None:
    """The first BatchNorm layer that sees one value per channel when the batch is a single
    image (its feature map is 1x1), or None. Training such a layer on a batch of one fails
    ("Expected more than 1 value per channel"). Found with one eval-mode forward pass, which
    changes no running statistics."""
    norms = {m: n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not norms:
        return None
    found: list[str] = []

    def spy(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if args[0][0, 0].numel() == 1 and not found:
            found.append(norms[module])

    hooks = [m.register_forward_pre_hook(spy) for m in norms]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, image_size, image_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found[0] if found else None


def init_weights(model: nn.Module, cfg: ArchCfg) -> None:
    """Initialise conv/linear weights. The classifier layer is scaled down under kaiming and
    xavier so the initial loss is close to ln(C); `normal` with a large std is left as is, which
    is exactly what the init-loss sanity check should catch."""
    if cfg.init == "default":
        return
    nonlin = "relu" if cfg.activation == "relu" else "leaky_relu"
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    last = weighted[-1] if weighted else None  # the classifier, conv (All-CNN) or linear
    for m in model.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        if cfg.init == "kaiming":
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d)
                                    else "fan_in", nonlinearity=nonlin)
        elif cfg.init == "xavier":
            nn.init.xavier_uniform_(m.weight)
        else:
            nn.init.normal_(m.weight, 0.0, cfg.init_std)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    if last is not None and cfg.init in ("kaiming", "xavier"):
        with torch.no_grad():
            last.weight.mul_(0.1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
