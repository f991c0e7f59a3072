"""Render ablation rows: Markdown (also the parent run's description), CSV, HTML, a rich
table for the terminal, and a bar chart with error bars."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnexp.ablate.stats import REFERENCE, Row


@dataclass
class TableInfo:
    title: str
    metric: str
    higher_is_better: bool
    mode: str
    changes: dict[str, str]  # arm -> what it changes (override text)
    notes: list[str] = field(default_factory=list)
    retuned: bool = False


def _is_acc(metric: str) -> bool:
    return metric.endswith("acc")


def _num(value: float, metric: str, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if _is_acc(metric):
        return f"{value * 100:{sign}.2f}" + (" pp" if signed else "%")
    return f"{value:{sign}.4f}"


def _pp(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:+.2f} pp"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def cells(rows: Sequence[Row], info: TableInfo) -> tuple[list[str], list[list[str]]]:
    """Header and string cells shared by the Markdown, HTML and terminal tables."""
    cumulative = info.mode == "cumulative"
    head = ["Arm", "Change", f"{info.metric} (mean ± std)", "n",
            "Δ vs previous" if cumulative else "Δ vs baseline"]
    head += ["Δ vs start"] if cumulative else []
    head += ["p (Welch)", "Verdict", "train–val gap", "Δ gap", "Diagnosis", "Params", "s / run"]
    head += ["LR (retuned)"] if info.retuned else []
    body = []
    for row in rows:
        if row.n == 0:
            score = "diverged"
        else:
            std = "" if not math.isfinite(row.std) else f" ± {_num(row.std, info.metric).rstrip('%')}"
            score = _num(row.mean, info.metric).rstrip("%") + std + ("%" if _is_acc(info.metric) else "")
        n = f"{row.n}/{row.seeds}" if row.diverged else str(row.n)
        ref = row.verdict == REFERENCE and not row.compared_to
        line = [row.arm, info.changes.get(row.arm, "") or "—", score, n,
                "—" if ref else _num(row.delta, info.metric, signed=True)]
        if cumulative:
            line.append("—" if ref else _num(row.delta_baseline, info.metric, signed=True))
        line += ["—" if ref else _p(row.p_value),
                 "—" if ref else row.verdict,
                 "n/a" if not math.isfinite(row.train_val_gap) else f"{row.train_val_gap * 100:.2f} pp",
                 "—" if ref else _pp(row.gap_change), row.diagnosis or "—", f"{row.params:,}",
                 f"{row.seconds:.1f}"]
        if info.retuned:
            line.append("n/a" if row.lr is None else f"{row.lr:.3g}")
        body.append(line)
    return head, body


def markdown(rows: Sequence[Row], info: TableInfo) -> str:
    head, body = cells(rows, info)
    esc = [[c.replace("|", "\\|") for c in line] for line in body]
    lines = [f"**{info.title}**", "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in esc]
    if info.notes:
        lines += [""] + [f"- {note}" for note in info.notes]
    return "\n".join(lines) + "\n"


def html_page(rows: Sequence[Row], info: TableInfo) -> str:
    head, body = cells(rows, info)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>\n"
                  for line in body)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in info.notes)
    return ("<!doctype html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(info.title)}</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "td:first-child,td:nth-child(2),th{text-align:left}</style></head><body>\n"
            f"<h2>{html.escape(info.title)}</h2>\n<table><thead><tr>{th}</tr></thead><tbody>\n"
            f"{trs}</tbody></table>\n<ul>{notes}</ul>\n</body></html>\n")


def records(rows: Sequence[Row], info: TableInfo) -> list[dict[str, Any]]:
    """Raw numbers per row (CSV, --json)."""
    out = []
    for row in rows:
        rec = asdict(row)
        rec["change"] = info.changes.get(row.arm, "")
        out.append(rec)
    return out


def write_csv(rows: Sequence[Row], info: TableInfo, path: Path) -> None:
    import pandas as pd

    recs = [{**r, "values": " ".join(f"{v:.6g}" for v in r["values"])}
            for r in records(rows, info)]
    pd.DataFrame(recs).to_csv(path, index=False)


def rich_table(rows: Sequence[Row], info: TableInfo) -> Any:
    """The terminal table: the file tables less the Change and Params columns (to fit)."""
    from rich.table import Table

    head, body = cells(rows, info)
    keep = [i for i, h in enumerate(head) if h not in ("Change", "Params")]
    head, body = [head[i] for i in keep], [[line[i] for i in keep] for line in body]
    table = Table(*head, title=info.title, title_justify="left")
    styles = {"helps": "green", "hurts": "red", "diverged": "bold red"}
    verdict_col = head.index("Verdict")
    for line in body:
        style = styles.get(line[verdict_col])
        table.add_row(*[f"[{style}]{c}[/]" if style and i == verdict_col else c
                        for i, c in enumerate(line)])
    return table


def bar_chart(rows: Sequence[Row], info: TableInfo) -> Any:
    """Mean ± std per arm, seeds as dots, the reference mean as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scale = 100.0 if _is_acc(info.metric) else 1.0
    fig = Figure(figsize=(max(5.0, 1.3 * len(rows) + 1.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    xs = range(len(rows))
    means = [r.mean * scale if r.n else 0.0 for r in rows]
    errs = [r.std * scale if math.isfinite(r.std) else 0.0 for r in rows]
    colors = ["#888888" if i == 0 else {"helps": "#2a9d4b", "hurts": "#d1495b"}.get(
        r.verdict, "#4c78a8") for i, r in enumerate(rows)]
    ax.bar(xs, means, yerr=errs, capsize=5, color=colors, alpha=0.85)
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r.values), [v * scale for v in r.values], color="black", s=10,
                   zorder=3)
        if r.diverged:
            ax.annotate("diverged" if not r.n else f"{r.diverged} diverged", (i, means[i]),
                        ha="center", va="bottom", color="#d1495b", fontsize=8)
    finite = [v * scale for r in rows for v in r.values]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max((hi - lo) * 0.6, 0.5 if scale > 1 else 0.01)
        ax.set_ylim(lo - pad, hi + pad)
    if rows and rows[0].n:
        ax.axhline(rows[0].mean * scale, color="#444444", ls="--", lw=1)
    ax.set_xticks(list(xs), [r.arm for r in rows], rotation=20, ha="right")
    ax.set_ylabel(f"{info.metric}{' (%)' if scale > 1 else ''}, mean ± std over seeds")
    ax.set_title(info.title, fontsize=10)
    return fig
