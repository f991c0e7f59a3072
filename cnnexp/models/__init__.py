"""Architectures by family; `build_model` turns a recipe into an initialised nn.Module."""

from __future__ import annotations

from torch import nn

from cnnexp.errors import BadInput
from cnnexp.models import convblock, fast, mobilenet, resnet, small, vgg, zoo  # noqa: F401
from cnnexp.models.layers import init_weights, single_value_batchnorm
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import Recipe


def build_model(recipe: Recipe, spec: ModelSpec) -> nn.Module:
    """The recipe's architecture for data of the given shape (`spec`: channels, classes, image
    size), with the recipe's dropout, initialised from the recipe's seed. The global RNG is
    left as it was: the training stream is seeded by the Trainer, however the model was made."""
    import dataclasses

    import torch

    spec = dataclasses.replace(spec, dropout=recipe.reg.dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed)
        model = MODELS.get(recipe.arch.model)(recipe.arch, spec)
        if not (recipe.arch.model == "zoo" and recipe.arch.weights_path):  # keep loaded weights
            init_weights(model, recipe.arch)
    if recipe.train.batch_size == 1:
        _check_batch_of_one(recipe, model, spec)
    return model


def _check_batch_of_one(recipe: Recipe, model: nn.Module, spec: ModelSpec) -> None:
    """BatchNorm cannot train on one value per channel: refuse before any run exists."""
    layer = single_value_batchnorm(model, spec.channels, spec.image_size)
    if layer is None:
        return
    other = ", or arch.norm=group" if recipe.arch.norm == "batch" and recipe.arch.model != "zoo" \
        else ""
    raise BadInput(f"train.batch_size=1 cannot train arch '{recipe.arch.name}': its BatchNorm "
                   f"layer '{layer}' sees 1x1 feature maps on {spec.image_size}x"
                   f"{spec.image_size} images, one value per channel; use train.batch_size=2 "
                   f"or more{other}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "ModelSpec", "build_model", "count_params"]
