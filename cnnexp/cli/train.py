"""`cnnexp train` and `cnnexp bench`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnexp.cli.app import (
    Args,
    Device,
    Experiment,
    Json,
    Quiet,
    Seed,
    Verbose,
    app,
    check_experiment,
    device_of,
    guarded_command,
    open_recipe,
)
from cnnexp.console import emit_json, err


@app.command()
@guarded_command
def train(args: Args = None, device: Device = "auto", seed: Seed = None,
          experiment: Experiment = None, json: Json = False, quiet: Quiet = False,
          verbose: Verbose = False,
          log_model: Annotated[bool | None, typer.Option(
              "--log-model/--no-log-model", help="Log the best epoch's weights as an MLflow "
              "model with its preprocessing (pyfunc: load, serve, `cnnexp predict`); default: "
              "on with --test, the final run.")] = None,
          register: Annotated[str | None, typer.Option(
              "--register", metavar="NAME", help="Also register the logged model in the "
              "MLflow Model Registry as a new version of NAME.")] = None,
          track: Annotated[bool, typer.Option(help="Track in MLflow (--no-track: don't).")]
          = True,
          resume: Annotated[str | None, typer.Option(
              "--resume", metavar="RUN_ID", help="Continue an interrupted tracked run from its "
              "last checkpoint (same recipe, same run).")] = None,
          test: Annotated[bool, typer.Option(
              "--test", help="The final figure: after training, evaluate the best epoch's "
              "weights (by val_acc) on the held-out test split. Use it once, at the end: "
              "decisions belong to validation.")] = False,
          refit: Annotated[bool, typer.Option(
              "--refit", help="Train on train+val with no validation split (after every "
              "decision is made); with --test the last epoch's weights are evaluated.")]
          = False) -> None:
    """Train a recipe and track it in MLflow.

    Examples:

        cnnexp train                                  # the embedded digits recipe

        cnnexp train shapes arch=resnet20 opt.lr=0.1 train.epochs=5

        cnnexp train my_recipe.yaml --device cuda --json

        cnnexp train --resume 3f2a...                 # continue an interrupted run

        cnnexp train fashion_mnist --test             # the final figure on the test split

        cnnexp train outputs/search/STUDY/best.yaml --refit --test

        cnnexp train fashion_mnist --test --register fashion-cnn   # then: cnnexp predict
    """
    from cnnexp.console import quiet_libraries, show_progress, summary_table, training_progress
    from cnnexp.errors import BadInput

    check_experiment(experiment)
    if register:
        from cnnexp.serving.mlflow_model import check_model_name

        check_model_name(register)
        if log_model is False:
            raise BadInput("--register registers the logged model: drop --no-log-model")
        if not track:
            raise BadInput("--register needs tracking (drop --no-track)")
    log_model = bool(register) or (test if log_model is None else log_model)
    callbacks = [EpochPrinter()] if verbose and not json else []
    if resume:
        if args or seed is not None or experiment or refit:
            raise BadInput("--resume takes no recipe, overrides, --seed, --experiment or "
                           "--refit: the run's own recipe.yaml is used")
        quiet_libraries()
        dev = device_of(device)
        from cnnexp import train as training

        with training_progress(show_progress(json, quiet), "resume") as bars:
            out = training.resume(resume, device=dev, log_model=log_model, test=test,
                                  callbacks=[*bars, *callbacks], register=register)
        name = f"resume {resume}"
    else:
        recipe = open_recipe(args, seed)
        dev = device_of(device)
        from cnnexp import train as training

        with training_progress(show_progress(json, quiet), recipe.name) as bars:
            out = training.train(recipe, device=dev, experiment=experiment, track=track,
                                 log_model=log_model, test=test, refit=refit,
                                 callbacks=[*bars, *callbacks], register=register)
        name = recipe.name
    if json:
        emit_json(out)
    elif not quiet:
        summary_table(f"cnnexp train {name}", _rows(out))
    if out.get("run_id"):  # the review figures, drawn after the result is out
        from cnnexp.diagnose.figures import spawn

        spawn(out["run_id"])
    if out["status"] == "diverged":
        raise typer.Exit(1)


def _rows(out: dict[str, Any]) -> dict[str, Any]:
    """The summary table: the run's figures, then the test figure with its noise."""
    rows = {k: v for k, v in out.items() if k not in ("test", "model")}
    if "test" in out:
        t = out["test"]
        rows["test_acc"] = (f"{t['test_acc']:.4f} ± {t['test_acc_se']:.4f} "
                            f"(n={t['test_images']}, {t['test_split']})")
        rows["test_loss"] = t["test_loss"]
        rows["tested weights"] = t["weights"]
    if out.get("model"):
        m = out["model"]
        rows["model"] = m["model_uri"] + (f" (registered: {m['registered_model']})"
                                          if m.get("registered_model") else "") + \
            "  ->  cnnexp predict MODEL IMAGES..."
    return rows


class EpochPrinter:
    """-v: one line per epoch on stderr (an engine callback)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def on_epoch_end(self, state: Any, metrics: dict[str, float]) -> None:
        err.print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()), highlight=False)


@app.command()
@guarded_command
def bench(args: Args = None, device: Device = "auto", json: Json = False,
          steps: Annotated[int, typer.Option(min=1, help="Timed steps per pass.")] = 50) -> None:
    """Images/sec for a recipe on a device, with where the time goes: data (batching +
    augmentation), forward+backward, optimiser, logging.

    Examples:

        cnnexp bench                                 # the default recipe on the best device

        cnnexp bench shapes arch=resnet18 train.batch_size=512 --device cuda --json
    """
    recipe = open_recipe(args)
    from cnnexp.bench import bench as run_bench

    out = run_bench(recipe, device=device_of(device), steps=steps)
    if json:
        emit_json(out)
        return
    from cnnexp.console import summary_table

    rows = {"device": out["device"], "images/sec": out["images_per_sec"],
            "amp": out["amp"], "channels_last": out["channels_last"]}
    rows |= {f"{k} ms/step ({out['share'][k]:.0%})": v for k, v in out["ms_per_step"].items()}
    summary_table(f"cnnexp bench {recipe.name} (batch {out['batch_size']})", rows)
