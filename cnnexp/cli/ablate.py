"""`cnnexp ablate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnexp.cli.app import (
    Args,
    Device,
    Json,
    Quiet,
    app,
    check_experiment,
    device_of,
    guarded_command,
    split_args,
)
from cnnexp.console import emit_json, err, quiet_libraries, show_progress


@app.command()
@guarded_command
def ablate(args: Args = None,
           spec: Annotated[str | None, typer.Option(
               "--spec", help="Ablation spec: a name in recipes/ablations/ or a YAML path "
                              "(default: digits_components).")] = None,
           mode: Annotated[str | None, typer.Option(
               help="leave-one-out | add-one-in | cumulative (default: the spec's).")] = None,
           seeds: Annotated[int | None, typer.Option(help="Seeds per arm (default: the spec's).")]
           = None,
           retune_lr: Annotated[bool, typer.Option(
               "--retune-lr", help="Give each arm a short LR search of its own first.")] = False,
           resume: Annotated[bool, typer.Option(
               "--resume", help="Reuse finished arm × seed runs found in MLflow.")] = False,
           out: Annotated[str | None, typer.Option(
               help="Folder for table.md/.csv/.html and chart.png "
                    "(default: outputs/ablate/SPEC-TIME/).")] = None,
           dry_run: Annotated[bool, typer.Option(
               "--dry-run", help="Compose and print every arm's overrides; train nothing.")]
           = False,
           device: Device = "auto",
           experiment: Annotated[str | None, typer.Option(
               "--experiment", help="MLflow experiment (default: ablation-SPEC).")] = None,
           json: Json = False, quiet: Quiet = False) -> None:
    """Ablation table over seeds: change one thing at a time, mean ± std, Δ, Welch p, verdict.

    RECIPE replaces the spec's baseline; OVERRIDES apply to every arm.

    Examples:

        cnnexp ablate                       # the digits_components spec

        cnnexp ablate train.epochs=2 --seeds 2 --json

        cnnexp ablate --spec cifar100_course data.root=~/data --retune-lr --resume
    """
    from cnnexp.ablate import render
    from cnnexp.ablate.run import Options, prepare, run_ablation

    check_experiment(experiment)
    ref, overrides = split_args(args)
    name, plan, arms = prepare(spec, ref, overrides, mode, seeds)
    if out:
        from cnnexp.files import check_out_folder

        check_out_folder(Path(out), "the ablation table and chart")  # before any training
    if dry_run:
        render.dry_run(name, plan, arms, json)
        return
    quiet_libraries()
    chatty = not json and not quiet
    if chatty:
        render.announce(name, plan, arms)
    opts = Options(device=device_of(device), experiment=experiment,
                   out=Path(out) if out else None, retune=retune_lr, resume=resume,
                   progress=show_progress(json, quiet),
                   say=(lambda msg: err.print(msg, highlight=False, markup=False)) if chatty else
                   (lambda _msg: None))
    try:
        outcome = run_ablation(name, plan, arms, opts)
    except KeyboardInterrupt:
        err.print(render.INTERRUPTED, highlight=False)
        raise
    if json:
        emit_json(outcome.summary)
    else:
        render.outcome(outcome, quiet)
