"""Turn a spec into arms: the override list and the composed, validated recipe of each row.

Order of overrides for every arm: spec `overrides`, then the command line's, then (add-one-in,
cumulative) the spec's `start`, then the arm's own change(s) — so an arm always wins."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cnnexp.ablate.spec import AblationSpec, to_overrides
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe
from cnnexp.schema import Recipe

# keys an arm may not touch: every arm gets the same budget and the same seeds
_BUDGET_KEYS = ("train.epochs", "train.seed")


@dataclass
class Arm:
    label: str
    overrides: list[str]  # the full list that composes this arm's recipe
    change: list[str]  # what this row changes relative to the row it builds on
    recipe: Recipe
    is_reference: bool = False

    def seed_recipe(self, seed_index: int, lr: float | None = None) -> Recipe:
        updates: dict[str, object] = {"seed": self.recipe.train.seed + seed_index}
        train = self.recipe.train.model_copy(update=updates)
        opt = self.recipe.opt if lr is None else self.recipe.opt.model_copy(update={"lr": lr})
        return self.recipe.model_copy(update={"train": train, "opt": opt})


def recipe_hash(recipe: Recipe) -> str:
    """Stable digest of everything a run depends on (matches runs on --resume); the search
    space and the description do not change a training run, so they are left out."""
    data = recipe.model_dump(mode="json", exclude={"search", "description"})
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_budget(label: str, change: list[str]) -> None:
    for text in change:
        key = text.partition("=")[0].lstrip("+")
        if key in _BUDGET_KEYS or key == "train":
            raise BadInput(f"arm '{label}' sets {key}: every arm gets the same budget and "
                           "seeds (set train.epochs in the spec's `overrides:` or on the command line)")


def _compose(ref: str, label: str, overrides: list[str]) -> Recipe:
    try:
        return load_recipe(ref, overrides)
    except BadInput as exc:
        raise BadInput(f"arm '{label}': {exc}") from None


def plan(spec: AblationSpec, recipe_ref: str | None = None,
         cli_overrides: list[str] | tuple[str, ...] = ()) -> list[Arm]:
    """Reference row first, then one Arm per spec arm; every recipe composed and validated
    here, before anything trains."""
    ref = recipe_ref or spec.baseline
    base = [*to_overrides(spec.overrides), *cli_overrides]
    start = [] if spec.mode == "leave-one-out" else to_overrides(spec.start)
    ref_label = spec.reference_label()
    if ref_label in spec.arms:
        raise BadInput(f"arm label '{ref_label}' is the reference row's; rename the arm or set "
                       "baseline_label")
    arms = [Arm(ref_label, [*base, *start], start, _compose(ref, ref_label, [*base, *start]),
                is_reference=True)]
    applied: list[str] = []
    for label, change_map in spec.arms.items():
        change = to_overrides(change_map)
        _check_budget(label, change)
        if spec.mode == "cumulative":
            applied = [*applied, *change]
            overrides = [*base, *start, *applied]
        else:
            overrides = [*base, *start, *change]
        arms.append(Arm(label, overrides, change, _compose(ref, label, overrides)))
    return arms
