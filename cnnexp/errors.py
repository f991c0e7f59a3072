"""Errors that the CLI turns into a one-line message and exit code 2 (bad input)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


class BadInput(Exception):
    """The user gave something cnnexp cannot use: a recipe, an override, a path, a name.
    The message is always one line (library messages may carry newlines)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class CheckFailed(Exception):
    """A run or check finished but its verdict is a failure (exit code 1)."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid names nearest to `name`, best first (may be empty)."""
    choices = sorted(set(choices))
    return difflib.get_close_matches(name, choices, n=n, cutoff=0.5)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or ' (valid: a, b, c)' when nothing is close."""
    choices = sorted(set(choices))
    near = closest(name, choices)
    if near:
        return " (did you mean " + " or ".join(f"'{c}'" for c in near) + "?)"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f" (valid: {shown})" if choices else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> BadInput:
    return BadInput(f"unknown {kind} '{name}'{did_you_mean(name, choices)}")


def validation_message(exc: Any, model: type[BaseModel], where: str = "",
                       noun: str = "value for") -> str:
    """A pydantic ValidationError as one line: its first error, with the closest valid key
    for an unknown one (looked up in `model`'s fields at that place)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    prefix = f"{where}: " if where else ""
    if err["type"] == "extra_forbidden":
        section, _, leaf = loc.rpartition(".")
        near = closest(leaf, fields_at(model, section))
        hint = f" (did you mean '{section + '.' if section else ''}{near[0]}'?)" if near else \
            did_you_mean(loc, dotted_keys(model))
        return f"{prefix}unknown key '{loc}'{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) or "input" not in err else f" (got {value!r})"
    return f"{prefix}invalid {noun} '{loc}': {msg}{shown}"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def fields_at(model: type[BaseModel], section: str) -> list[str]:
    """Field names of the model section at a dotted path ('' = top level)."""
    for part in filter(None, section.split(".")):
        sub = _submodel(model.model_fields[part].annotation) if part in model.model_fields \
            else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field of the model as a dotted key (`opt.lr`)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        keys += dotted_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return keys
