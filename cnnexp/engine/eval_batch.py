"""The evaluation batch size: the recipe's number, or (auto) one that suits the device.

On CUDA a large batch keeps the GPU busy: 1024. On a CPU a large batch is slower: its
activations no longer fit in the caches. Measured on 2 cores (docs/performance.md), forward
passes of the small CNN on 28x28 images ran at ~700 images/s in batches of 1024 and
~1,500-1,800 in batches of 64-128; resnet20 on 32x32 at 360 vs ~1,150; the small CNN on 8x8
digits was as fast at 1024 as at 256. What they share: the fast batch is the one whose largest
activation stays near CPU_ACTIVATION_BUDGET bytes. So on a CPU, auto measures the largest
activation of one image (one forward pass with hooks) and takes the largest power of two
whose batch stays within the budget, between MIN_BATCH and GPU_BATCH. Evaluation results do
not depend on it (eval mode: no batch statistics).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

GPU_BATCH = 1024
MIN_BATCH = 32
CPU_ACTIVATION_BUDGET = 8 * 2**20  # bytes of one eval batch's largest activation


def eval_batch_size(setting: int | Literal["auto"], model: nn.Module, image: torch.Tensor,
                    device: torch.device) -> int:
    """`setting` when it is a number; else GPU_BATCH off the CPU and the cache-sized batch on
    it. `image`: one input shaped like the data (1, C, H, W), on `device`."""
    if isinstance(setting, int):
        return setting
    if device.type != "cpu":
        return GPU_BATCH
    per_image = largest_activation_bytes(model, image)
    batch = GPU_BATCH
    while batch > MIN_BATCH and batch * per_image > CPU_ACTIVATION_BUDGET:
        batch //= 2
    return batch


@torch.no_grad()
def largest_activation_bytes(model: nn.Module, image: torch.Tensor) -> int:
    """Bytes of the largest tensor a leaf module outputs for one image (eval mode: running
    statistics are read, not updated; the model's mode is restored)."""
    largest = image.numel() * image.element_size()

    def hook(_module: nn.Module, _inputs: object, out: object) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        model(image)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return largest
