"""`cnnexp search`."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnexp.cli.app import Args, Json, Quiet, app, guarded_command, split_args
from cnnexp.console import emit_json, err, quiet_libraries, show_progress


@app.command()
@guarded_command
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
           confirm: Annotated[bool, typer.Option(
               help="After the last stage, retrain the best configuration and the recipe over "
                    "several seeds at the final budget and say whether search beat the recipe "
                    "(--no-confirm: skip).")] = True,
           confirm_seeds: Annotated[str | None, typer.Option(
               "--confirm-seeds", help="Seeds per side in the confirming stage, the same for "
                                       "both (paired), or 'auto': add seeds until the verdict "
                                       "is decided, up to search.confirm.max_seeds (default: "
                                       "the recipe's search.confirm.seeds, 3).")] = None,
           test: Annotated[bool, typer.Option(
               "--test", help="Then evaluate the confirmed winner once on the held-out test "
                              "split (the final figure).")] = False,
           budget: Annotated[str | None, typer.Option(
               "--budget", help="Wall-clock budget, e.g. 30m, 1.5h: trials per stage and "
                                "confirm seeds are planned from a short measurement on this "
                                "machine, printed first, and kept to (default: the recipe's "
                                "search.budget; none: the recipe's trial counts).")] = None,
           final_budget: Annotated[str | None, typer.Option(
               "--final-budget", help="Time for the final run, e.g. 20m: best.yaml trains as "
                                      "many epochs as fit it on this machine, measured on the "
                                      "tuned configuration (default: the recipe's "
                                      "search.final_budget; none: its train.epochs).")] = None,
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

        cnnexp search fashion_mnist --test             # confirm, then the final test figure

        cnnexp search fashion_mnist --confirm-seeds auto   # seeds until the verdict is decided

        cnnexp search fashion_mnist --budget 40m       # trials and seeds planned to fit 40 min

        cnnexp search fashion_mnist_plain --final-budget 20m   # best.yaml: epochs for 20 min
    """
    from cnnexp.errors import CheckFailed
    from cnnexp.redact import remember
    from cnnexp.search import render
    from cnnexp.search.run import SearchOptions, run_search

    remember(storage)  # before anything can quote it
    ref, overrides = split_args(args)
    opts = SearchOptions(stages=stages, trials=trials, study=study, storage=storage,
                         workers=workers, devices=devices, resume=resume,
                         heartbeat=heartbeat, out=out, track=track, confirm=confirm,
                         confirm_seeds=confirm_seeds, test=test, budget=budget,
                         final_budget=final_budget)
    quiet_libraries()
    result = run_search(ref, overrides, opts, console=err, lines=not json and not quiet,
                        bar=show_progress(json, quiet))
    if json or quiet:
        render.warnings(result, err)
    if quiet:
        err.print(result["headline"], highlight=False, soft_wrap=True)
    if json:
        emit_json(result)
    elif not quiet:
        from cnnexp.console import SafeConsole as Console

        render.render(result, Console())
    if result["best"] is None:
        raise CheckFailed(f"search {result['study']}: no trial completed "
                          f"(reasons in {result['csv_path']})")
