"""`cnnexp sanity` and `cnnexp lr-find`."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnexp.cli.app import (
    Args,
    Device,
    Experiment,
    Json,
    Track,
    app,
    check_experiment,
    device_of,
    guarded_command,
    open_recipe,
)
from cnnexp.console import emit_json, show_progress

Checks = Annotated[str | None, typer.Option(
    "--checks", help="Comma-separated subset of: data, init-loss, reg-loss, grad-flow, overfit, "
                     "lr-range (default: all, run in that order).")]
StartLr = Annotated[float, typer.Option("--start-lr", help="LR range test: first LR.")]
EndLr = Annotated[float, typer.Option("--end-lr", help="LR range test: last LR.")]
LrSteps = Annotated[int, typer.Option("--lr-steps", help="LR range test: steps (one per LR).")]


@app.command()
@guarded_command
def sanity(args: Args = None, checks: Checks = None,
           tiny: Annotated[int, typer.Option("--tiny", help="Examples the overfit check must "
                                                            "learn perfectly.")] = 20,
           overfit_steps: Annotated[int, typer.Option(
               "--overfit-steps", help="Step budget of the overfit check.")] = 300,
           start_lr: StartLr = 1e-7, end_lr: EndLr = 10.0, lr_steps: LrSteps = 100,
           device: Device = "auto", experiment: Experiment = None, json: Json = False,
           track: Track = True) -> None:
    """Check a recipe before spending compute: data, initial loss ~ ln(C), loss rises with
    regularisation, gradient flow, overfit a tiny subset, LR range test. Each check gets a
    verdict (pass/warn/fail); exit code 1 when one failed. Logged as an MLflow run `sanity`
    with one nested run per check (plots as artifacts).

    Examples:

        cnnexp sanity                                    # every check on the digits recipe

        cnnexp sanity shapes --checks init-loss,overfit --tiny 50

        cnnexp sanity arch.init=normal arch.init_std=1.0 --json   # fails init-loss
    """
    from cnnexp.sanity import render
    from cnnexp.sanity.run import parse_checks
    from cnnexp.sanity.run import sanity as run_sanity

    check_experiment(experiment)
    names = parse_checks(checks)
    recipe = open_recipe(args)
    dev = device_of(device)
    with render.check_progress(show_progress(json, False), len(names)) as on_check:
        out = run_sanity(recipe, checks=names, tiny=tiny, device=dev, experiment=experiment,
                         track=track, overfit_steps=overfit_steps,
                         lr_range={"start_lr": start_lr, "end_lr": end_lr,
                                   "num_steps": lr_steps}, on_check=on_check)
    if json:
        emit_json(out)
    else:
        render.print_table(f"cnnexp sanity {recipe.name}", out["checks"], render.footer(out))
    if not out["passed"]:
        raise typer.Exit(1)


@app.command("lr-find")
@guarded_command
def lr_find(args: Args = None, start_lr: StartLr = 1e-7, end_lr: EndLr = 10.0,
            steps: Annotated[int, typer.Option("--steps", help="Steps (one per LR).")] = 100,
            device: Device = "auto", experiment: Experiment = None, json: Json = False,
            track: Track = True) -> None:
    """Smith's LR range test on a recipe: sweep the LR exponentially, suggest one (three
    rules, recommended where they agree) and print it as an override to copy. Weights,
    optimiser and RNG state are restored afterwards. Exit code 1 when no LR made the loss fall.

    Examples:

        cnnexp lr-find                                   # digits

        cnnexp lr-find shapes opt=adam --start-lr 1e-6 --end-lr 1 --steps 200 --json
    """
    from cnnexp.sanity import render
    from cnnexp.sanity.run import find_lr

    check_experiment(experiment)
    recipe = open_recipe(args)
    dev = device_of(device)
    sweep = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": steps}
    with render.step_progress(show_progress(json, False), steps, "lr-find") as on_step:
        out = find_lr(recipe, device=dev, experiment=experiment, track=track,
                      lr_range={**sweep, "on_step": on_step})
    if json:
        emit_json(out)
    else:
        render.print_table(f"cnnexp lr-find {recipe.name}", [out["check"]], render.footer(out))
    if out["status"] == "fail":
        raise typer.Exit(1)
