"""Memory format by measurement: channels_last or the default (contiguous) layout.

On CUDA, channels_last is the known win (tensor cores, cuDNN's NHWC kernels). On a CPU it
depends on the model, the image size and the CPU: measured here for resnet20 and vgg it was
clearly faster, for the small CNN on 28x28 images not (docs/performance.md). So with
`train.channels_last: auto` a CPU run times a few forward+backward steps of a copy of its
model in both layouts and keeps the faster one. The answer is cached per process (search
trials and ablation seeds of one model measure once) and on disk in the user's cache, keyed by
torch version, CPU model, thread count, architecture and batch shape: the probe costs ~2 s of
a Fashion-MNIST run's start, and the next `cnnexp train` of the same model on the same machine
reuses the answer (CNNEXP_LAYOUT_CACHE=off measures in every process). `true`/`false` in the
recipe overrides it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

_CHOSEN: dict[str, bool] = {}
CACHE_ENV = "CNNEXP_LAYOUT_CACHE"  # "off": no disk cache
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
    key = _key(model, example)
    if key not in _CHOSEN:
        known = _on_disk().get(key)
        _CHOSEN[key] = known if isinstance(known, bool) else _measure(model, example)
        if known is None:
            _remember(key, _CHOSEN[key])
    return _CHOSEN[key]


def _key(model: nn.Module, example: torch.Tensor) -> str:
    """What the answer depends on: the model's shapes, the batch shape, the threads, the CPU
    and the torch build (a new torch may bring new kernels)."""
    text = "|".join([torch.__version__, _cpu_name(), str(torch.get_num_threads()),
                     _signature(model), str(tuple(example.shape))])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_file() -> Path | None:
    if os.environ.get(CACHE_ENV, "").lower() in ("off", "0", "false"):
        return None
    from cnnexp.files import user_cache_dir

    return user_cache_dir() / "layout.json"


def _on_disk() -> dict[str, bool]:
    path = _cache_file()
    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):  # none yet, or unreadable: measure
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: str, channels_last: bool) -> None:
    """Add the answer to the disk cache (atomic replace; never fatal: it is only a cache)."""
    from cnnexp.files import replaced

    path = _cache_file()
    if path is None:
        return
    try:
        with replaced(path) as tmp:
            tmp.write_text(json.dumps({**_on_disk(), key: channels_last}, indent=1))
    except OSError:
        pass


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
