"""The `cnnexp` command line. Thin commands: parse options, call one function, render.

One module per command family: train (train, bench), recipes, sanity (sanity, lr-find),
search, ablate, review (ui, diagnose, report), serve (predict, export)."""

from __future__ import annotations

from cnnexp.cli import ablate, recipes, review, sanity, search, serve, train  # noqa: F401
from cnnexp.cli.app import app, split_args

__all__ = ["app", "main", "split_args"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
