"""cnnexp: disciplined CNN experiments from YAML recipes, tracked in MLflow.

Public API (same recipes as the CLI, for notebooks)::

    import cnnexp
    recipe = cnnexp.load_recipe("digits", ["opt.lr=0.1"])
    data = cnnexp.build_data(recipe)
    result = cnnexp.fit(recipe, data=data, device="cpu")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnexp.recipe import load_recipe

if TYPE_CHECKING:
    from cnnexp.data import DataBundle
    from cnnexp.engine import FitResult
    from cnnexp.schema import Recipe

__version__ = "0.1.0"


def build_data(recipe: Recipe) -> DataBundle:
    from cnnexp.data import build_data as _build

    return _build(recipe)


def build_model(recipe: Recipe, data: DataBundle | None = None) -> Any:
    """The recipe's model, shaped for `data` (built from the recipe when not given)."""
    from cnnexp.models import ModelSpec
    from cnnexp.models import build_model as _build

    data = data or build_data(recipe)
    return _build(recipe, ModelSpec(data.channels, data.num_classes, data.image_size))


def fit(recipe: Recipe, **kwargs: Any) -> FitResult:
    """Train (untracked); see cnnexp.engine.fit for the keyword arguments."""
    from cnnexp.engine import fit as _fit

    return _fit(recipe, **kwargs)


__all__ = ["build_data", "build_model", "fit", "load_recipe"]
