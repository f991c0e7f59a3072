"""Memory format by measurement: channels_last or the default (contiguous) layout.

On CUDA, channels_last is the known win (tensor cores, cuDNN's NHWC kernels). On a CPU it
depends on the model, the image size and the CPU: measured here for resnet20 and vgg it was
clearly faster, for the small CNN on 28x28 images not (docs/performance.md). So with
`train.channels_last: auto` a CPU run times a few forward+backward steps of a copy of its
model in both layouts and keeps the faster one (cached per process: search trials and
ablation seeds of one model measure once). `true`/`false` in the recipe overrides it.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

_CHOSEN: dict[tuple, bool] = {}
# channels_last must be clearly faster: near a tie, timing noise would flip the choice
MARGIN = 1.10
STEPS = 3


def choose_channels_last(setting: bool | str, model: nn.Module, example: torch.Tensor,
                         device: torch.device) -> bool:
    """The layout to train in: the recipe's choice, or (auto) CUDA yes, MPS no, CPU measured
    on `example` (a training batch shaped like the real ones)."""
    if isinstance(setting, bool):
        return setting
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    key = (_signature(model), tuple(example.shape), torch.get_num_threads())
    if key not in _CHOSEN:
        _CHOSEN[key] = _measure(model, example)
    return _CHOSEN[key]


def _signature(model: nn.Module) -> str:
    """Same architecture and sizes -> same answer (weights do not matter for speed)."""
    shapes = ",".join(f"{tuple(p.shape)}" for p in model.parameters())
    return f"{type(model).__name__}:{len(list(model.modules()))}:{shapes}"


def _measure(model: nn.Module, example: torch.Tensor) -> bool:
    """Seconds per forward+backward step in each layout (a copy of the model, the global RNG
    left as it was); True when channels_last is clearly faster."""
    with torch.random.fork_rng(devices=[]):
        plain = _time(copy.deepcopy(model), example, channels_last=False)
        nhwc = _time(copy.deepcopy(model), example, channels_last=True)
    return nhwc * MARGIN < plain


def _time(model: nn.Module, x: torch.Tensor, *, channels_last: bool) -> float:
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for i in range(STEPS + 1):  # the first step warms up (allocations, kernel choice)
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model(x).float().logsumexp(1).mean().backward()
        if i:
            best = min(best, time.perf_counter() - t0)
    return best
