"""`cnnexp ui`, `cnnexp diagnose` and `cnnexp report`: reviewing what MLflow holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cnnexp.cli.app import Json, app, guarded_command
from cnnexp.console import emit_json, err, quiet_libraries

Threshold = Annotated[list[str] | None, typer.Option(
    "--threshold", help="Override a diagnosis threshold, NAME=VALUE (repeatable), e.g. "
                        "gap=0.08 or low_acc=0.7; see docs/review.md.")]


@app.command()
@guarded_command
def ui(port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
       host: Annotated[str, typer.Option(help="Interface to bind; anything but 127.0.0.1 "
                                               "exposes your runs to the network.")]
       = "127.0.0.1") -> None:
    """Start the MLflow UI on the store the commands write to (MLFLOW_TRACKING_URI, else
    ./mlflow.db). Example: `cnnexp ui --port 5001`, then open http://127.0.0.1:5001
    """
    from cnnexp.tracking.ui import serve

    raise typer.Exit(serve(host, port))


@app.command()
@guarded_command
def diagnose(run_id: Annotated[str, typer.Argument(help="An MLflow run id (or a unique "
                                                        "prefix of one).")],
             threshold: Threshold = None, json: Json = False) -> None:
    """Read a run's learning curves: overfitting, underfitting, not_converged, unstable or
    healthy, with the evidence and the remedies (and the non-remedies).

    Examples:

        cnnexp diagnose 3f2a9c1e8b7d4e6f                 # a run id from `cnnexp train`

        cnnexp diagnose 3f2a9c1e --threshold gap=0.1 --json
    """
    from cnnexp.diagnose.render import print_diagnosis
    from cnnexp.diagnose.run import diagnose_run

    quiet_libraries()
    out = diagnose_run(run_id, threshold)
    if json:
        emit_json(out)
    else:
        print_diagnosis(out)


@app.command()
@guarded_command
def report(ref: Annotated[str | None, typer.Argument(
               metavar="[STUDY|RUN_ID]", help="A run id (or prefix), an experiment name, a "
               "search study or an ablation name (default: the latest work across "
               "experiments).",
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

        cnnexp report                                   # the latest work, with a next step

        cnnexp report digits-3f2a9c --out study.html    # a search study

        cnnexp report ablation-digits_components --json
    """
    from cnnexp.report.run import build

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    quiet_libraries()
    result = build(ref, Path(out) if out else None, log=log)
    if json:
        emit_json(result)
    else:
        err.print(escape(f"report on {result['subject']} ({len(result['runs'])} run(s)): "
                         f"{result['out']}"), highlight=False)
