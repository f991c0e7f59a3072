"""The `cnnexp search` command body: run the search, then render it (tables or one JSON)."""

from __future__ import annotations

from collections.abc import Sequence

from cnnexp.console import emit_json, err, quiet_libraries, show_progress
from cnnexp.search.run import SearchOptions, run_search


def search_command(ref: str | None, overrides: Sequence[str], opts: SearchOptions, *,
                   json: bool = False, quiet: bool = False) -> None:
    quiet_libraries()
    result = run_search(ref, overrides, opts, console=err, lines=not json and not quiet,
                        bar=show_progress(json, quiet))
    if json or quiet:  # edge warnings always reach the user (stderr; also in the JSON)
        for stage in result["stages"]:
            for w in stage["edge_warnings"]:
                err.print(f"[yellow]warning:[/] {stage['name']}: {w}", highlight=False,
                          soft_wrap=True)
    if json:
        emit_json(result)
    elif not quiet:
        from rich.console import Console

        from cnnexp.search.results import render

        render(result, Console())
    if result["best"] is None:
        from cnnexp.errors import CheckFailed

        raise CheckFailed(f"search {result['study']}: no trial completed "
                          f"(reasons in {result['csv_path']})")
