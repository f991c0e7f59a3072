"""What `cnnexp search` prints: the top trials per stage, warnings, the best trial, files."""

from __future__ import annotations

from typing import Any

from cnnexp.search.narrow import fmt


def warnings(result: dict[str, Any], console: Any) -> None:
    """Edge warnings reach the user even with --json or -q (stderr; also in the JSON)."""
    for stage in result["stages"]:
        for w in [*stage["edge_warnings"], *fidelity_warning(stage)]:
            console.print(f"[yellow]warning:[/] {stage['name']}: {w}", highlight=False,
                          soft_wrap=True)


def fidelity_warning(stage: dict[str, Any]) -> list[str]:
    from rich.markup import escape  # it names the stages: recipe text

    warning = (stage.get("fidelity") or {}).get("warning")
    return [escape(warning)] if warning else []


def render(result: dict[str, Any], console: Any, k: int = 5) -> None:
    """Rich tables: the top trials per stage, then the best trial and the files written."""
    from rich.table import Table

    for s in result["stages"]:
        budget = f"{s['epochs']} epochs" + (f" on {s['subset']} images" if s.get("subset")
                                            else "")
        skipped = f", {s['skipped']} skipped (budget)" if s.get("skipped") else ""
        console.print(f"[bold]{s['name']}[/]: {s['complete']} complete, {s['pruned']} pruned, "
                      f"{s['failed']} failed{skipped} ({budget}); top {k}:", highlight=False)
        table = Table()
        params = list(s["ranges"])
        for col in ["trial", result["metric"], *map(short, params), "diagnosis"]:
            table.add_column(col, overflow="fold")
        for row in s["top"][:k]:
            table.add_row(row["name"].split(" ")[0], f"{row['value']:.4f}",
                          *(fmt(row["params"].get(p, "")) for p in params),
                          row.get("diagnosis") or "-")
        console.print(table)
        colour = "" if s.get("signal", True) else "[yellow]"
        console.print(f"  {colour}{s.get('noise_line', '')}", highlight=False, soft_wrap=True)
        if s.get("top_gap"):
            console.print(f"  {s['top_gap']}", highlight=False, soft_wrap=True)
        if s.get("fidelity"):
            console.print(f"  fidelity: {s['fidelity']['text']}", highlight=False,
                          markup=False, soft_wrap=True)
        for w in [*s["edge_warnings"], *fidelity_warning(s)]:
            console.print(f"[yellow]warning:[/] {s['name']}: {w}", highlight=False,
                          soft_wrap=True)
    best = result["best"]
    if best:
        console.print(f"best trial: {best['stage']}-{best['trial']:02d} {result['metric']}="
                      f"{best.get('noise') or best['value']}  ->  {result['best_recipe_path']}",
                      highlight=False, soft_wrap=True)
    final = result.get("final")
    if final:
        console.print(f"  best.yaml trains {final['epochs']} epoch(s): the final budget of "
                      f"{final['budget'] / 60:.1f} min at {final['epoch_seconds']:.0f} s per epoch",
                      highlight=False, soft_wrap=True)
    confirm = result.get("confirm")
    if confirm and confirm.get("test"):
        t = confirm["test"]
        console.print(f"test split ({t['arm']}, {t['test_images']} images, {t['test_split']}): "
                      f"test_acc {t['test_acc_mean']:.4f}"
                      + (f" ± {t['test_acc_std']:.4f} over {len(t['test_acc'])} seeds"
                         if len(t["test_acc"]) > 1 else ""), highlight=False, soft_wrap=True)
    console.print(f"trials: {result['csv_path']}   study: {result['study']}   "
                  f"({result['seconds']:.0f} s)", highlight=False, soft_wrap=True)
    colour = {"helps": "green", "hurts": "red"}.get((confirm or {}).get("verdict", ""), "bold")
    console.print(f"[{colour}]{result['headline']}[/]", highlight=False, soft_wrap=True)


def short(path: str) -> str:
    """Column header for a parameter: `opt.weight_decay` -> `wd` (the run-name abbreviation)."""
    from cnnexp.search.trial import SHORT

    leaf = path.rpartition(".")[2]
    return SHORT.get(leaf, leaf)
