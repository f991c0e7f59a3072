"""What `cnnexp diagnose` prints: the verdict, the evidence, the remedies."""

from __future__ import annotations

from typing import Any


def print_diagnosis(out: dict[str, Any]) -> None:
    """Human output: verdict, evidence table, remedies."""
    from rich.table import Table

    from cnnexp.console import SafeConsole as Console

    con = Console()
    colour = {"healthy": "green", "not_converged": "yellow"}.get(out["diagnosis"], "red")
    con.print(f"[bold]{out['run_name']}[/] ({out['run_id']})", highlight=False)
    con.print(f"diagnosis: [bold {colour}]{out['diagnosis']}[/] — {out['summary']}",
              highlight=False)
    table = Table("evidence", "value", title_justify="left", show_header=False)
    for k, v in out["evidence"].items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    con.print(table)
    for title, items in (("remedies", out["remedies"]), ("not remedies", out["not_remedies"])):
        if items:
            con.print(f"[bold]{title}:[/]")
            for item in items:
                con.print(f"  - {item}", highlight=False)
