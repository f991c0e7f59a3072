"""Errors that the CLI turns into a one-line message and exit code 2 (bad input)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
