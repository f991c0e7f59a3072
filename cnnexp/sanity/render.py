"""The verdict table: rich for the terminal, markdown for the MLflow run description."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}
MARK = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail"}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(title: str, checks: Sequence[dict[str, Any]]) -> str:
    passed = not any(c["status"] == "fail" for c in checks)
    lines = [f"**{title}**: {'passed' if passed else 'FAILED'}", "",
             "| check | verdict | measured | expected | hint |", "|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {MARK.get(c['status'], c['status'])} | {_cell(c['measured'])} "
              f"| {_cell(c['expected'])} | {_cell(c['hint'])} |" for c in checks]
    return "\n".join(lines)


def print_table(title: str, checks: Sequence[dict[str, Any]], footer: str = "") -> None:
    from rich.markup import escape
    from rich.table import Table

    from cnnexp.console import SafeConsole as Console

    table = Table("check", "verdict", "measured", "expected", "hint", title=escape(title),
                  title_justify="left", show_lines=True)
    for c in checks:
        style = STYLE.get(c["status"], "")
        table.add_row(escape(c["name"]), f"[{style}]{c['status']}[/]", escape(c["measured"]),
                      escape(c["expected"]), escape(c["hint"]))
    console = Console()
    console.print(table)
    if footer:
        console.print(footer, highlight=False)


@contextmanager
def step_progress(enabled: bool, total: int, label: str) -> Iterator[Any]:
    """A bar over the LR sweep's steps (stderr, transient); yields on_step(i, loss) or None."""
    if not enabled:
        yield None
        return
    from cnnexp.console import progress_bar

    progress = progress_bar()
    with progress:
        task = progress.add_task(label, total=total, info="loss -")
        yield lambda i, loss: progress.update(task, completed=i + 1, info=f"loss {loss:.4g}")


@contextmanager
def check_progress(enabled: bool, total: int) -> Iterator[Any]:
    """A bar over the checks (stderr, transient); yields on_check(name) or a no-op."""
    if not enabled:
        yield lambda name: None
        return
    from cnnexp.console import progress_bar

    progress = progress_bar(label="sanity {task.fields[check]:<10}", info=False)
    with progress:
        task = progress.add_task("sanity", total=total, check="")
        state = {"started": False}

        def on_check(name: str) -> None:
            if state["started"]:
                progress.advance(task)
            state["started"] = True
            progress.update(task, check=name)

        yield on_check


def footer(out: dict[str, Any]) -> str:
    """One line under the table: time, where the runs are, the LR override to copy."""
    parts = [f"{out.get('seconds', 0):.1f} s"]
    if out.get("run_id"):
        parts.append(f"MLflow run {out['run_id']} (experiment {out['experiment_id']})")
    checks = out.get("checks") or [out.get("check", {})]
    override = next((c.get("override") for c in checks if c.get("override")), None)
    if override:
        parts.append(f"suggested override: {override}")
    return " · ".join(parts)
