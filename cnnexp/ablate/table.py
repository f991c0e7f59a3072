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
    """Each arm's seeds as dots and its mean ± std as a bar, against the baseline's band.

    Zoomed to the arms near the baseline (differences of a few points stay visible); an arm
    far outside (e.g. one stuck at chance) is drawn as a marker at the edge with its value,
    instead of stretching the axis until nothing else can be read."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from cnnexp.plotstyle import plain_text

    plain_text()  # arm labels are user text: `$` is a dollar sign, not math
    scale = 100.0 if _is_acc(info.metric) else 1.0
    fig = Figure(figsize=(max(5.0, 1.3 * len(rows) + 1.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    base = rows[0] if rows and rows[0].n else None
    lo, hi = _zoom(rows, scale)
    colours = ["#555555"] + [{"helps": "#2a9d4b", "hurts": "#d1495b"}.get(r.verdict, "#4c78a8")
                             for r in rows[1:]]
    if base is not None:
        b, s = base.mean * scale, (base.std * scale if math.isfinite(base.std) else 0.0)
        ax.axhspan(b - s, b + s, color="#999999", alpha=0.18, lw=0, label="baseline ± std")
        ax.axhline(b, color="#444444", ls="--", lw=1)
    for i, (r, colour) in enumerate(zip(rows, colours, strict=True)):
        seeds = [v * scale for v in r.values]
        inside = [v for v in seeds if lo <= v <= hi]
        ax.scatter([i + 0.12] * len(inside), inside, color="black", s=12, zorder=3)
        if not r.n:
            ax.annotate("diverged", (i, lo), ha="center", va="bottom", color="#d1495b",
                        fontsize=8)
            continue
        mean = r.mean * scale
        err = r.std * scale if math.isfinite(r.std) else 0.0
        if lo <= mean <= hi:
            ax.errorbar([i], [mean], yerr=[err], fmt="o", color=colour, ms=7, capsize=5, lw=2)
        else:  # far outside the zoom: a marker at the edge saying where it is
            edge = lo if mean < lo else hi
            ax.scatter([i], [edge], marker="v" if mean < lo else "^", color=colour, s=70)
            ax.annotate(f"{mean:.1f}{'%' if scale > 1 else ''}", (i, edge),
                        textcoords="offset points", xytext=(0, 8 if mean < lo else -14),
                        ha="center", fontsize=8, color=colour)
        if r.diverged:
            ax.annotate(f"{r.diverged} diverged", (i, hi), ha="center", va="top",
                        color="#d1495b", fontsize=8)
    ax.set_ylim(lo, hi)
    ax.set_xticks(list(range(len(rows))), [r.arm for r in rows], rotation=20, ha="right")
    ax.set_ylabel(f"{info.metric}{' (%)' if scale > 1 else ''}: seeds, mean ± std")
    ax.set_title(info.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _zoom(rows: Sequence[Row], scale: float) -> tuple[float, float]:
    """The y-range: every seed of the arms whose mean lies near the baseline's (within 5
    points or 10 baseline stds), padded; accuracies stay within [0, 100]."""
    finished = [r for r in rows if r.n]
    if not finished:
        return (0.0, 100.0) if scale > 1 else (0.0, 1.0)
    b = finished[0].mean
    spread = finished[0].std if math.isfinite(finished[0].std) else 0.0
    near = max(10 * spread, 0.05 if scale > 1 else 0.05 * abs(b) + 1e-9)
    close = [r for r in finished if abs(r.mean - b) <= near] or finished[:1]
    values = [v * scale for r in close for v in r.values if math.isfinite(v)]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.25, 0.25 if scale > 1 else 0.005)
    lo, hi = lo - pad, hi + pad
    if scale > 1:
        lo, hi = max(lo, 0.0), min(hi, 100.0)
    return lo, hi
