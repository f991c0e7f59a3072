"""Architectures by family; `build_model` turns a recipe into an initialised nn.Module."""

from __future__ import annotations

from torch import nn

from cnnexp.models import convblock, fast, mobilenet, resnet, small, vgg, zoo  # noqa: F401
from cnnexp.models.layers import init_weights
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import Recipe


def build_model(recipe: Recipe, spec: ModelSpec) -> nn.Module:
    """The recipe's architecture for data of the given shape, initialised with its seed."""
    import torch

    torch.manual_seed(recipe.train.seed)
    spec = ModelSpec(spec.channels, spec.num_classes, spec.image_size, recipe.reg.dropout)
    model = MODELS.get(recipe.arch.model)(recipe.arch, spec)
    if not (recipe.arch.model == "zoo" and recipe.arch.weights_path):  # keep loaded weights
        init_weights(model, recipe.arch)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "ModelSpec", "build_model", "count_params"]
