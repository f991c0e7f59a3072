"""Flushing subnormal floats to zero while training, and only then.

Weights and Adam moments that weight decay drives towards zero become subnormal floats, which
x86 CPUs compute with far more slowly: a run slows down as it trains (measured: 10% of a
Fashion-MNIST model's weights subnormal by epoch 9, and a step from that checkpoint took 1.9x
as long as with them flushed). Flushing changes nothing a float32 model can resolve, but it is
processor-wide state that also changes Python's own float arithmetic, so it is switched on
for the training steps and restored afterwards (statistics, Optuna and the caller's code see
IEEE floats as usual).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def flushing() -> bool:
    """Whether the processor flushes subnormal results to zero right now."""
    smallest_normal = sys.float_info.min
    return smallest_normal / 2 == 0.0


@contextmanager
def flushed_denormals() -> Iterator[None]:
    before = flushing()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
