"""Ablation specs (recipes/ablations/*.yaml): validated with pydantic, arms turned into override
strings so that composing an arm reuses cnnexp.recipe's checks and did-you-mean errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cnnexp.errors import BadInput, did_you_mean, validation_message

Mode = Literal["leave-one-out", "add-one-in", "cumulative"]
MODES: tuple[str, ...] = ("leave-one-out", "add-one-in", "cumulative")
# metric -> True when higher is better; all are read from the final epoch except best_val_acc
METRICS = ("val_acc", "best_val_acc", "val_loss")  # what an ablation may compare
DEFAULT_SPEC = "digits_components"
Overrides = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetuneCfg(_Strict):
    """--retune-lr: a short log-uniform LR search per arm around the baseline LR."""

    trials: int = Field(6, ge=2, le=200)
    epochs: int | None = Field(None, ge=1)  # default: a third of the run's epochs, at least 1
    factor: float = Field(10.0, gt=1.0, le=1e4)  # search [lr / factor, lr * factor]


class AblationSpec(_Strict):
    description: str = ""
    baseline: str = "digits"  # an experiment recipe (name or path)
    mode: Mode = "leave-one-out"
    seeds: int = Field(3, ge=1, le=1000)
    metric: str = "val_acc"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # significance level of the verdict
    overrides: Overrides = Field(default_factory=dict)  # applied to the baseline (every arm)
    start: Overrides = Field(default_factory=dict)  # add-one-in/cumulative: the plain start point
    baseline_label: str | None = None  # label of the reference row
    arms: dict[str, Overrides] = Field(default_factory=dict)
    retune: RetuneCfg = Field(default_factory=RetuneCfg)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric '{value}'{did_you_mean(value, METRICS)}")
        return value

    @field_validator("arms")
    @classmethod
    def _some_arms(cls, arms: dict[str, Overrides]) -> dict[str, Overrides]:
        if not arms:
            raise ValueError("needs at least one arm (label: {key: value})")
        for label, change in arms.items():
            if not str(label).strip():
                raise ValueError("arm labels must not be empty")
            if not change:
                raise ValueError(f"arm '{label}' changes nothing")
        return arms

    def reference_label(self) -> str:
        if self.baseline_label:
            return self.baseline_label
        return "baseline" if self.mode == "leave-one-out" else "start"


def load_spec(ref: str | None) -> tuple[str, AblationSpec]:
    """(name, spec) from recipes/ablations/<ref>.yaml or a path; BadInput on any problem."""
    from cnnexp.recipe import find, read_yaml

    ref = ref or DEFAULT_SPEC
    path = find("ablations", ref)
    data = read_yaml(path)
    if not data:
        raise BadInput(f"ablation spec '{ref}' is empty: it needs at least `arms:`")
    return Path(path).stem, parse_spec(data, str(path))


def parse_spec(data: dict[str, Any], where: str = "spec") -> AblationSpec:
    try:
        return AblationSpec.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc, AblationSpec, where)) from None


def flatten(change: Overrides, prefix: str = "") -> list[tuple[str, Any]]:
    """{opt: {weight_decay: 0}} and {opt.weight_decay: 0} both give [("opt.weight_decay", 0)]."""
    out: list[tuple[str, Any]] = []
    for key, value in change.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten(value, f"{path}.")
        else:
            out.append((path, value))
    return out


def _render(value: Any) -> str:
    """A value as override text that yaml.safe_load reads back to the same value."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def to_overrides(change: Overrides) -> list[str]:
    """Arm mapping -> override strings for cnnexp.recipe.compose (`aug=none`, `opt.lr=0.1`)."""
    return [f"{key}={_render(value)}" for key, value in flatten(change)]
