"""The body of `cnnexp ablate`: validate everything (spec, every arm's recipe) before anything
trains, run, then render the table (terminal) or one JSON object (--json)."""

from __future__ import annotations

from pathlib import Path

from cnnexp.ablate.plan import Arm, plan, recipe_hash
from cnnexp.ablate.spec import MODES, AblationSpec, load_spec
from cnnexp.console import emit_json, err, quiet_libraries, show_progress
from cnnexp.errors import BadInput, did_you_mean


def prepare(spec_ref: str | None, recipe_ref: str | None, overrides: list[str],
            mode: str | None = None, seeds: int | None = None) -> tuple[str, AblationSpec, list[Arm]]:
    """Spec + command-line choices -> (name, spec, composed arms); BadInput on any problem."""
    name, spec = load_spec(spec_ref)
    if mode is not None:
        if mode not in MODES:
            raise BadInput(f"unknown --mode '{mode}'{did_you_mean(mode, MODES)}")
        spec = spec.model_copy(update={"mode": mode})
    if seeds is not None:
        if seeds < 1:
            raise BadInput(f"--seeds must be at least 1 (got {seeds})")
        spec = spec.model_copy(update={"seeds": seeds})
    return name, spec, plan(spec, recipe_ref, overrides)


def _dry_run(name: str, spec: AblationSpec, arms: list[Arm], json: bool) -> None:
    rows = [{"arm": a.label, "change": a.change, "overrides": a.overrides,
             "recipe_hash": recipe_hash(a.recipe)} for a in arms]
    if json:
        emit_json({"name": name, "mode": spec.mode, "seeds": spec.seeds, "arms": rows})
        return
    for row in rows:
        err.print(f"[bold]{row['arm']}[/]: {' '.join(row['overrides']) or '(baseline as is)'}",
                  highlight=False)


def ablate_command(*, spec_ref: str | None, recipe_ref: str | None, overrides: list[str],
                   mode: str | None, seeds: int | None, retune_lr: bool, resume: bool,
                   device: str, experiment: str | None, out: Path | None, dry_run: bool,
                   json: bool, quiet: bool) -> None:
    name, spec, arms = prepare(spec_ref, recipe_ref, overrides, mode, seeds)
    if dry_run:
        _dry_run(name, spec, arms, json)
        return
    quiet_libraries()
    from cnnexp.ablate.run import Options, run_ablation
    from cnnexp.ablate.table import rich_table

    chatty = not json and not quiet
    if chatty:
        err.print(f"ablation [bold]{name}[/]: {len(arms)} arms × {spec.seeds} seed(s), "
                  f"{spec.mode}, {arms[0].recipe.train.epochs} epochs per run", highlight=False)
    opts = Options(device=device, experiment=experiment, out=out, retune=retune_lr,
                   resume=resume, progress=show_progress(json, quiet),
                   say=(lambda msg: err.print(msg, highlight=False)) if chatty else
                   (lambda _msg: None))
    try:
        outcome = run_ablation(name, spec, arms, opts)
    except KeyboardInterrupt:
        err.print("finished arm × seed runs are kept: run the same command with --resume "
                  "to reuse them", highlight=False)
        raise
    if json:
        from cnnexp.ablate.run import finite

        emit_json(finite(outcome.summary))
        return
    from rich.console import Console

    Console().print(rich_table(outcome.rows, outcome.info))
    if not quiet:
        for note in outcome.info.notes:
            err.print(f"  {note}", highlight=False)
        err.print(f"table, chart and per-seed CSV in {outcome.summary['out_dir']}; MLflow run "
                  f"{outcome.summary['parent_run_id']} (`cnnexp ui`)", highlight=False)
