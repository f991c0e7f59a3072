"""The `cnnexp` command line. Thin commands: parse, call one function, render.

Heavy libraries (torch, mlflow, optuna) are imported inside the commands that need them, so
`cnnexp --help` and `cnnexp recipes list` start fast."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnexp.console import emit_json, err, guarded

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


def split_args(args: list[str] | None, seed: int | None = None) -> tuple[str | None, list[str]]:
    """First argument without '=' is the recipe; the rest are overrides."""
    args = list(args or [])
    recipe = args.pop(0) if args and "=" not in args[0] else None
    if seed is not None:
        args.append(f"train.seed={seed}")
    return recipe, args


@app.command()
def train(args: Args = None, device: Device = "auto", seed: Seed = None,
          experiment: Experiment = None, json: Json = False, quiet: Quiet = False,
          verbose: Verbose = False,
          log_model: Annotated[bool, typer.Option(help="Log the best weights as an artifact.")]
          = False,
          track: Annotated[bool, typer.Option(help="Track in MLflow (--no-track: don't).")]
          = True,
          resume: Annotated[str | None, typer.Option(
              "--resume", metavar="RUN_ID", help="Continue an interrupted tracked run from its "
              "last checkpoint (same recipe, same run).")] = None) -> None:
    """Train a recipe and track it in MLflow.

    Examples:

        cnnexp train                                  # the embedded digits recipe

        cnnexp train shapes arch=resnet20 opt.lr=0.1 train.epochs=5

        cnnexp train my_recipe.yaml --device cuda --json

        cnnexp train --resume 3f2a...                 # continue an interrupted run
    """

    def body() -> None:
        from cnnexp.console import quiet_libraries, show_progress, summary_table, training_progress
        from cnnexp.errors import BadInput
        from cnnexp.recipe import load_recipe

        callbacks = [_EpochPrinter()] if verbose and not json else []
        if resume:
            if args or seed is not None or experiment:
                raise BadInput("--resume takes no recipe, overrides, --seed or --experiment: "
                               "the run's own recipe.yaml is used")
            quiet_libraries()
            from cnnexp import train as runner

            with training_progress(show_progress(json, quiet), "resume") as bars:
                out = runner.resume(resume, device=device, log_model=log_model,
                                    callbacks=[*bars, *callbacks])
            name = f"resume {resume}"
        else:
            ref, overrides = split_args(args, seed)
            recipe = load_recipe(ref, overrides)
            quiet_libraries()
            from cnnexp import train as runner

            with training_progress(show_progress(json, quiet), recipe.name) as bars:
                out = runner.train(recipe, device=device, experiment=experiment, track=track,
                                   log_model=log_model, callbacks=[*bars, *callbacks])
            name = recipe.name
        if json:
            emit_json(out)
        elif not quiet:
            summary_table(f"cnnexp train {name}", out)
        if out["status"] == "diverged":
            raise typer.Exit(1)

    guarded(body)


class _EpochPrinter:
    """-v: one line per epoch on stderr."""

    def __getattr__(self, name: str):
        return lambda *a, **k: None

    def on_epoch_end(self, state, metrics) -> None:
        err.print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()), highlight=False)


@recipes_app.command("list")
def recipes_list(json: Json = False) -> None:
    """List experiments and components by group (./recipes first, then built-in).

    Example: `cnnexp recipes list --json`
    """

    def body() -> None:
        from cnnexp.recipe import KINDS, available

        found = {kind: available(kind) for kind in KINDS}
        if json:
            emit_json(found)
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("group", "names", title="cnnexp recipes", title_justify="left")
        for kind, names in found.items():
            table.add_row(kind, ", ".join(names) or "-")
        Console().print(table)

    guarded(body)


@recipes_app.command("show")
def recipes_show(args: Args = None, json: Json = False) -> None:
    """Print the composed, validated recipe as YAML.

    Examples: `cnnexp recipes show`, `cnnexp recipes show shapes arch=lenet5 opt.lr=0.01`
    """

    def body() -> None:
        from cnnexp.recipe import load_recipe, to_yaml

        ref, overrides = split_args(args)
        recipe = load_recipe(ref, overrides)
        if json:
            emit_json(recipe.model_dump(mode="json"))
        else:
            typer.echo(to_yaml(recipe), nl=False)

    guarded(body)


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
       host: Annotated[str, typer.Option(help="Interface to bind; anything but 127.0.0.1 "
                                               "exposes your runs to the network.")]
       = "127.0.0.1") -> None:
    """Start the MLflow UI on the store the commands write to (MLFLOW_TRACKING_URI, else
    ./mlflow.db). Example: `cnnexp ui --port 5001`, then open http://127.0.0.1:5001
    """

    def body() -> None:
        from cnnexp.tracking.ui import serve

        raise typer.Exit(serve(host, port))

    guarded(body)


@app.command()
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

    def body() -> None:
        from pathlib import Path

        from cnnexp.ablate.command import ablate_command

        ref, overrides = split_args(args)
        ablate_command(spec_ref=spec, recipe_ref=ref, overrides=overrides, mode=mode,
                       seeds=seeds, retune_lr=retune_lr, resume=resume, device=device,
                       experiment=experiment, out=Path(out) if out else None,
                       dry_run=dry_run, json=json, quiet=quiet)

    guarded(body)


Checks = Annotated[str | None, typer.Option(
    "--checks", help="Comma-separated subset of: data, init-loss, reg-loss, grad-flow, overfit, "
                     "lr-range (default: all, run in that order).")]
StartLr = Annotated[float, typer.Option("--start-lr", help="LR range test: first LR.")]
EndLr = Annotated[float, typer.Option("--end-lr", help="LR range test: last LR.")]
LrSteps = Annotated[int, typer.Option("--lr-steps", help="LR range test: steps (one per LR).")]
Track = Annotated[bool, typer.Option(help="Track in MLflow (--no-track: don't).")]


@app.command()
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

    def body() -> None:
        from cnnexp.console import quiet_libraries, show_progress
        from cnnexp.recipe import load_recipe
        from cnnexp.sanity import render
        from cnnexp.sanity.run import parse_checks
        from cnnexp.sanity.run import sanity as run_sanity

        ref, overrides = split_args(args)
        recipe = load_recipe(ref, overrides)
        names = parse_checks(checks)
        quiet_libraries()
        with render.check_progress(show_progress(json, False), len(names)) as on_check:
            out = run_sanity(recipe, checks=names, tiny=tiny, device=device,
                             experiment=experiment, track=track, overfit_steps=overfit_steps,
                             lr_range={"start_lr": start_lr, "end_lr": end_lr,
                                       "num_steps": lr_steps}, on_check=on_check)
        if json:
            emit_json(out)
        else:
            render.print_table(f"cnnexp sanity {recipe.name}", out["checks"],
                               render.footer(out))
        if not out["passed"]:
            raise typer.Exit(1)

    guarded(body)


@app.command("lr-find")
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

    def body() -> None:
        from cnnexp.console import quiet_libraries, show_progress
        from cnnexp.recipe import load_recipe
        from cnnexp.sanity import render
        from cnnexp.sanity.run import find_lr

        ref, overrides = split_args(args)
        recipe = load_recipe(ref, overrides)
        quiet_libraries()
        sweep = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": steps}
        with render.step_progress(show_progress(json, False), steps, "lr-find") as on_step:
            out = find_lr(recipe, device=device, experiment=experiment, track=track,
                          lr_range={**sweep, "on_step": on_step})
        if json:
            emit_json(out)
        else:
            render.print_table(f"cnnexp lr-find {recipe.name}", [out["check"]],
                               render.footer(out))
        if out["status"] == "fail":
            raise typer.Exit(1)

    guarded(body)


@app.command()
def bench(args: Args = None, device: Device = "auto", json: Json = False,
          steps: Annotated[int, typer.Option(min=1, help="Timed steps per pass.")] = 50) -> None:
    """Images/sec for a recipe on a device, with where the time goes: data (batching +
    augmentation), forward+backward, optimiser, logging.

    Examples:

        cnnexp bench                                 # the default recipe on the best device

        cnnexp bench shapes arch=resnet18 train.batch_size=512 --device cuda --json
    """

    def body() -> None:
        from cnnexp.console import quiet_libraries
        from cnnexp.recipe import load_recipe

        ref, overrides = split_args(args)
        recipe = load_recipe(ref, overrides)
        quiet_libraries()
        from cnnexp.bench import bench as run_bench

        out = run_bench(recipe, device=device, steps=steps)
        if json:
            emit_json(out)
            return
        from cnnexp.console import summary_table

        rows = {"device": out["device"], "images/sec": out["images_per_sec"],
                "amp": out["amp"], "channels_last": out["channels_last"]}
        rows |= {f"{k} ms/step ({out['share'][k]:.0%})": v
                 for k, v in out["ms_per_step"].items()}
        summary_table(f"cnnexp bench {recipe.name} (batch {out['batch_size']})", rows)

    guarded(body)


@app.command()
def search(args: Args = None,
           stages: Annotated[str | None, typer.Option(
               help="Stages to run, in order, from the recipe's search.stages "
                    "(default: all, e.g. coarse,fine).")] = None,
           trials: Annotated[str | None, typer.Option(
               help="Trials per stage: N for every stage, or coarse=8,fine=4.")] = None,
           study: Annotated[str | None, typer.Option(
               help="Study name (default: RECIPE-HASH, a hash of the recipe and space, so "
                    "re-running the same command resumes).")] = None,
           storage: Annotated[str | None, typer.Option(
               help="Optuna storage: a journal file (default ./cnnexp-optuna.journal, safe for "
                    "several processes) or a URL such as postgresql://user@host/db.")] = None,
           workers: Annotated[int, typer.Option(help="Worker processes on this host.")] = 1,
           devices: Annotated[str | None, typer.Option(
               help="Devices given to workers round-robin, e.g. cuda:0,cuda:1 (default: auto).")]
           = None,
           resume: Annotated[bool, typer.Option(
               help="Continue an existing study (error if there is none).")] = False,
           heartbeat: Annotated[int, typer.Option(
               help="Seconds between trial heartbeats (database storages): a trial whose worker "
                    "died is retried after 3 missed beats.")] = 30,
           out: Annotated[str | None, typer.Option(
               help="Folder for trials.csv, best.yaml and plots (default: "
                    "outputs/search/STUDY).")] = None,
           track: Annotated[bool, typer.Option(help="Track in MLflow (--no-track: don't).")]
           = True,
           json: Json = False, quiet: Quiet = False) -> None:
    """Coarse -> fine random search in log space (Optuna), tracked in MLflow.

    The recipe's `search` section holds the space and the stages; each stage after the first
    narrows the ranges around the previous stage's best trials, and a best value at the edge of
    its range is flagged and the next range extended past it.

    Examples:

        cnnexp search                                  # digits: coarse then fine

        cnnexp search --trials coarse=8,fine=4 --workers 2 --json

        cnnexp search shapes --devices cuda:0,cuda:1 --workers 2 --storage postgresql://h/db

        cnnexp search --resume                         # continue after Ctrl-C
    """

    def body() -> None:
        from cnnexp.search.command import search_command
        from cnnexp.search.run import SearchOptions

        ref, overrides = split_args(args)
        opts = SearchOptions(stages=stages, trials=trials, study=study, storage=storage,
                             workers=workers, devices=devices, resume=resume,
                             heartbeat=heartbeat, out=out, track=track)
        search_command(ref, overrides, opts, json=json, quiet=quiet)

    guarded(body)


Threshold = Annotated[list[str] | None, typer.Option(
    "--threshold", help="Override a diagnosis threshold, NAME=VALUE (repeatable), e.g. "
                        "gap=0.08 or low_acc=0.7; see docs/review.md.")]


@app.command()
def diagnose(run_id: Annotated[str, typer.Argument(help="An MLflow run id (or a unique "
                                                        "prefix of one).")],
             threshold: Threshold = None, json: Json = False) -> None:
    """Read a run's learning curves: overfitting, underfitting, not_converged, unstable or
    healthy, with the evidence and the remedies (and the non-remedies).

    Examples:

        cnnexp diagnose 3f2a9c1e8b7d4e6f                 # a run id from `cnnexp train`

        cnnexp diagnose 3f2a9c1e --threshold gap=0.1 --json
    """

    def body() -> None:
        from cnnexp.console import quiet_libraries
        from cnnexp.diagnose.run import diagnose_run, print_diagnosis

        quiet_libraries()
        out = diagnose_run(run_id, threshold)
        if json:
            emit_json(out)
        else:
            print_diagnosis(out)

    guarded(body)


@app.command()
def report(ref: Annotated[str | None, typer.Argument(
               metavar="[STUDY|RUN_ID]", help="A run id (or prefix), an experiment name, a "
               "search study or an ablation name (default: the newest experiment).",
               show_default=False)] = None,
           out: Annotated[str | None, typer.Option(
               help="HTML file to write (default: outputs/report/NAME.html).")] = None,
           log: Annotated[bool, typer.Option(help="Also log the file to MLflow (--no-log: "
                                                  "don't).")] = True,
           json: Json = False) -> None:
    """One self-contained HTML page (plots inline) summarising what MLflow holds: sanity
    verdicts, search stages with ranges and edge warnings, the best trial's curves and
    diagnosis, the ablation table, training runs with confusion matrix and top losses. Logged
    to the main run as `report/NAME.html`.

    Examples:

        cnnexp report                                   # the newest experiment

        cnnexp report digits-3f2a9c --out study.html    # a search study

        cnnexp report ablation-digits_components --json
    """

    def body() -> None:
        import os
        from pathlib import Path

        from cnnexp.console import quiet_libraries
        from cnnexp.report.run import build

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        quiet_libraries()
        result = build(ref, Path(out) if out else None, log=log)
        if json:
            emit_json(result)
        else:
            err.print(f"report on {result['subject']} ({len(result['runs'])} run(s)): "
                      f"{result['out']}", highlight=False)

    guarded(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
