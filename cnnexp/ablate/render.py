"""What `cnnexp ablate` prints: the arms of a dry run, the table, where the files went."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from cnnexp.ablate.plan import Arm, recipe_hash
from cnnexp.ablate.spec import AblationSpec
from cnnexp.console import emit_json, err

INTERRUPTED = ("finished arm × seed runs are kept: run the same command with --resume to "
               "reuse them")


def dry_run(name: str, spec: AblationSpec, arms: list[Arm], json: bool) -> None:
    rows = [{"arm": a.label, "change": a.change, "overrides": a.overrides,
             "recipe_hash": recipe_hash(a.recipe)} for a in arms]
    if json:
        emit_json({"name": name, "mode": spec.mode, "seeds": spec.seeds, "arms": rows})
        return
    for row in rows:
        overrides = escape(" ".join(row["overrides"])) or "(baseline as is)"
        err.print(f"[bold]{escape(row['arm'])}[/]: {overrides}",
                  highlight=False)


def announce(name: str, spec: AblationSpec, arms: list[Arm]) -> None:
    err.print(f"ablation [bold]{escape(name)}[/]: {len(arms)} arms × {spec.seeds} seed(s), "
              f"{spec.mode}, {arms[0].recipe.train.epochs} epochs per run", highlight=False)


def outcome(result: Any, quiet: bool) -> None:
    """The table on stdout; notes and where the files are on stderr unless -q."""
    from cnnexp.ablate.table import rich_table
    from cnnexp.console import SafeConsole as Console

    Console().print(rich_table(result.rows, result.info))
    if not quiet:
        for note in result.info.notes:
            err.print(f"  {note}", highlight=False)
        err.print(f"table, chart and per-seed CSV in {result.summary['out_dir']}; MLflow run "
                  f"{result.summary['parent_run_id']} (`cnnexp ui`)", highlight=False)
