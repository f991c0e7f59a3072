"""`cnnexp predict` and `cnnexp export`: a logged model used outside cnnexp's training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnexp.cli.app import Device, Json, Quiet, app, device_of, guarded_command
from cnnexp.console import emit_json, err


@app.command()
@guarded_command
def predict(model: Annotated[str, typer.Argument(
                help="A run id (or unique prefix), models:/NAME/VERSION, models:/NAME@alias, "
                     "runs:/RUN/model, or a folder holding a logged model.")],
            images: Annotated[list[str], typer.Argument(
                help="Image files and/or folders of them (PNG, JPEG, ...; any size, grey or "
                     "colour: converted and resized as the model's data was).")],
            device: Device = "auto",
            top: Annotated[int, typer.Option("--top", "-k", min=1,
                                             help="Classes shown per image.")] = 3,
            batch_size: Annotated[int, typer.Option(min=1, max=65536,
                                                    help="Images per batch.")] = 256,
            csv: Annotated[str | None, typer.Option(
                "--csv", metavar="FILE", help="Also write every probability to FILE.")] = None,
            json: Json = False, quiet: Quiet = False) -> None:
    """Class probabilities for images with a model logged by `cnnexp train --log-model`.

    Examples:

        cnnexp predict 3f2a9c photos/                      # a run's model, a folder of images

        cnnexp predict models:/fashion-cnn/1 shirt.png boot.jpg --json

        cnnexp predict models:/fashion-cnn@champion test/ --csv predictions.csv
    """
    from cnnexp.console import quiet_libraries
    from cnnexp.serving.predict import predict as run_predict
    from cnnexp.serving.predict import write_csv

    quiet_libraries()
    dev = device_of(device)
    show = not (json or quiet)
    from rich.progress import Progress

    with Progress(console=err, transient=True, disable=not show) as bar:
        task = bar.add_task("predicting", total=None)
        result = run_predict(model, images, device=dev, k=top, batch=batch_size,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total))
    if csv:
        write_csv(result, csv)
    from rich.markup import escape

    if not json:
        for s in result.skipped:
            err.print(f"[yellow]skipped:[/] {escape(s.path)}: {escape(s.reason)}",
                      highlight=False, soft_wrap=True)
    if json:
        emit_json({**result.as_dict(), **({"csv": csv} if csv else {})})
        return
    if quiet:
        return
    from rich.table import Table

    table = Table(title=f"cnnexp predict ({len(result.rows)} images)")
    for col in ("file", "class", "probability", f"top {top}"):
        table.add_column(col, overflow="fold")
    for r in result.rows:
        table.add_row(escape(r.file), escape(r.top), f"{r.probability:.4f}",
                      escape(", ".join(f"{c} {p:.3f}" for c, p in r.topk)))
    from cnnexp.console import SafeConsole as Console

    Console().print(table)
    if csv:
        err.print(f"wrote {csv}", highlight=False, markup=False)


@app.command()
@guarded_command
def export(model: Annotated[str, typer.Argument(
               help="A run id (or prefix), models:/NAME/VERSION, runs:/RUN/model or a "
                    "folder holding a logged model.")],
           out: Annotated[str, typer.Option(
               "--out", "-o", help="model.ts (TorchScript) or model.pt2 (torch.export)")],
           json: Json = False) -> None:
    """Save a logged model for plain PyTorch: uint8 images (N, H, W, C) in, class
    probabilities out, preprocessing and TTA inside; meta.json (classes, size) embedded.

    Examples:

        cnnexp export 3f2a9c --out model.ts     # torch.jit.load("model.ts")

        cnnexp export models:/fashion-cnn/1 --out model.pt2   # torch.export.load(...).module()
    """
    from cnnexp.serving.export import export as run_export

    path = run_export(model, Path(out))
    if json:
        emit_json({"model": model, "out": str(path)})
    else:
        err.print(f"wrote {path}", highlight=False, markup=False)
