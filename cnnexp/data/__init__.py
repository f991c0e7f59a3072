"""Datasets (digits, shapes, torchvision, imagefolder), batching and batched augmentation."""

from __future__ import annotations

from cnnexp.data import (  # noqa: F401 (register)
    digits,
    imagefolder,
    mnist,
    shapes,
    torchvision_sets,
)
from cnnexp.data.bundle import DataBundle
from cnnexp.data.registry import DATASETS
from cnnexp.schema import Recipe


def build_data(recipe: Recipe) -> DataBundle:
    """The recipe's dataset, split and with normalisation statistics, on the CPU."""
    bundle = DATASETS.get(recipe.data.dataset)(recipe.data)
    if bundle.n_train < 1 or bundle.n_val < 1:
        from cnnexp.errors import BadInput

        raise BadInput(f"dataset '{recipe.data.name}' has {bundle.n_train} training and "
                       f"{bundle.n_val} validation examples; both must be at least 1")
    return bundle


__all__ = ["DATASETS", "DataBundle", "build_data"]
