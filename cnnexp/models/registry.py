"""The model registry and what a builder is told about the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnexp.registry import Registry
from cnnexp.schema import ArchCfg


@dataclass(frozen=True)
class ModelSpec:
    channels: int
    num_classes: int
    image_size: int
    dropout: float = 0.0  # set by build_model from the recipe's reg.dropout


MODELS: Registry[Callable[[ArchCfg, ModelSpec], nn.Module]] = Registry("architecture")
