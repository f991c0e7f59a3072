"""The Typer application and the option types the commands share.

Heavy libraries (torch, mlflow, optuna) are imported inside the commands that need them, so
`cnnexp --help` and `cnnexp recipes list` start fast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cnnexp.console import guarded

if TYPE_CHECKING:
    import torch

    from cnnexp.schema import Recipe

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="cnnexp", no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
    help="Disciplined CNN experiments from YAML recipes, tracked in MLflow.\n\n"
         "Recipes compose data x arch x aug x reg x opt; override with `group=name` or "
         "`a.b=value`.\n\nExamples: `cnnexp train`, `cnnexp train shapes arch=resnet20 "
         "opt.lr=0.1`, `cnnexp recipes show digits`, `cnnexp ui`.")
recipes_app = typer.Typer(help="List and show recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

Args = Annotated[list[str] | None, typer.Argument(
    help="[RECIPE] [OVERRIDES...]: an experiment name or YAML path (default: digits), then "
         "overrides like `arch=lenet5` or `opt.lr=0.05`.", show_default=False)]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps "
                                     "(auto prefers CUDA, then MPS, then CPU).")]
Seed = Annotated[int | None, typer.Option("--seed", help="Sets train.seed.")]
Experiment = Annotated[str | None, typer.Option(
    "--experiment", help="MLflow experiment name (default: the recipe name).")]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and the result.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Per-epoch lines.")]
Track = Annotated[bool, typer.Option(help="Track in MLflow (--no-track: don't).")]


def guarded_command(fn: F) -> F:
    """Run a command's body under `console.guarded`: bad input -> one line and exit 2, a failed
    check -> exit 1, Ctrl-C -> exit 130, never a traceback; with --json the error is also the
    one JSON object on stdout. Keeps the signature for Typer."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return guarded(lambda: fn(*args, **kwargs), json_mode=bool(kwargs.get("json")))

    return wrapper  # type: ignore[return-value]


def split_args(args: list[str] | None, seed: int | None = None) -> tuple[str | None, list[str]]:
    """First argument without '=' is the recipe; the rest are overrides."""
    args = list(args or [])
    recipe = args.pop(0) if args and "=" not in args[0] else None
    if seed is not None:
        args.append(f"train.seed={seed}")
    return recipe, args


def check_experiment(name: str | None) -> None:
    """--experiment held to the recipe name's rule (1 to 128 printable characters), before any
    work: MLflow would refuse it only when the first run is created."""
    if name is not None:
        from cnnexp.recipe import check_experiment_name

        check_experiment_name(name)


def open_recipe(args: list[str] | None, seed: int | None = None) -> Recipe:
    """The opening every recipe command shares: compose and validate the recipe from the
    arguments (bad input fails here, before anything heavy), then quiet the libraries."""
    from cnnexp.console import quiet_libraries
    from cnnexp.recipe import load_recipe

    ref, overrides = split_args(args, seed)
    recipe = load_recipe(ref, overrides)
    quiet_libraries()
    return recipe


def device_of(name: str) -> torch.device:
    """The one place a command turns --device into a torch.device."""
    from cnnexp.engine.device import resolve_device

    return resolve_device(name)
