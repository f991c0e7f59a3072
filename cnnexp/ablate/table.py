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


def delta_interval(row: Row, other: Row, level: float = 0.95) -> float:
    """Half-width of the Welch interval of `row.mean - other.mean` (NaN below 2 seeds a side):
    the same test the verdict's p-value comes from."""
    if row.n < 2 or other.n < 2 or not (math.isfinite(row.std) and math.isfinite(other.std)):
        return math.nan
    va, vb = row.std ** 2 / row.n, other.std ** 2 / other.n
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va ** 2 / (row.n - 1) + vb ** 2 / (other.n - 1))
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df)) * se


def _thinned(ticks: list[float], most: int = 11) -> list[float]:
    """At most `most` ticks, keeping 0 and the outermost, dropping from the middle of each
    side (on a symlog axis the small ones crowd together)."""
    side = [t for t in ticks if t > 0]
    while len(side) * 2 + 1 > most:
        side = side[1::2] if len(side) > 2 else side[-1:]
    return sorted({0.0, *side, *[-t for t in side]})


def bar_chart(rows: Sequence[Row], info: TableInfo) -> Any:
    """Every arm's difference from what it is compared with (the baseline; the previous arm
    in cumulative mode) with its 95% interval, one row per arm, on an axis that is linear
    near zero and logarithmic beyond: a -53 pp arm and a -0.5 pp arm are both readable, and
    none is zoomed off the chart. Arms whose difference is significant are filled and
    coloured (helps green, hurts red); the others are hollow grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker
    from matplotlib.figure import Figure

    from cnnexp.plotstyle import plain_text

    plain_text()  # arm labels are user text: `$` is a dollar sign, not math
    scale, unit = (100.0, " pp") if _is_acc(info.metric) else (1.0, "")
    by_name = {r.arm: r for r in rows}
    arms = list(rows[1:])
    fig = Figure(figsize=(8.0, 0.55 * max(len(arms), 1) + 2.0), layout="constrained")
    ax = fig.add_subplot()
    spans: list[float] = []
    for j, r in enumerate(arms):
        y = len(arms) - 1 - j
        other = by_name.get(r.compared_to, rows[0])
        if not r.n or not math.isfinite(r.delta):
            ax.annotate("diverged" if r.diverged else "n/a", (0, y), ha="center", va="center",
                        color="#d1495b", fontsize=9)
            continue
        d, half = r.delta * scale, delta_interval(r, other) * scale
        significant = r.verdict in ("helps", "hurts")
        colour = {"helps": "#2a9d4b", "hurts": "#d1495b"}.get(r.verdict, "#777777")
        ax.errorbar([d], [y], xerr=[half] if math.isfinite(half) else None, fmt="o",
                    color=colour, mfc=colour if significant else "white", ms=8, capsize=4,
                    lw=2)
        p = f", p={r.p_value:.2g}" if math.isfinite(r.p_value) else ""
        ax.annotate(f"{d:+.2f}{unit}{p}" + (f" ({r.diverged} diverged)" if r.diverged else ""),
                    (d, y), textcoords="offset points", xytext=(0, 9), ha="center",
                    fontsize=8, color=colour)
        spans += [abs(d) + (half if math.isfinite(half) else 0.0)]
        if math.isfinite(half):
            spans.append(half)
    ax.axvline(0, color="#444444", lw=1)
    widths = [delta_interval(r, by_name.get(r.compared_to, rows[0])) * scale for r in arms]
    finite = [w for w in widths if math.isfinite(w) and w > 0]
    # linear within about one interval of zero, so noise-sized effects are not stretched
    linthresh = max(min(finite) if finite else 0.5, 1e-3 * scale)
    ax.set_xscale("symlog", linthresh=linthresh)
    reach = max(spans, default=1.0) * 1.3 or 1.0
    ax.set_xlim(-reach, reach)
    # plain tick labels (mathtext is off for user text, and symlog's defaults are mathtext)
    steps = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5)]
    ticks = sorted({0.0, *[sign * t for t in steps for sign in (-1, 1) if t <= reach]})
    shown = [t for t in ticks if t == 0 or abs(t) >= linthresh / 2]
    ax.set_xticks(_thinned(shown), [f"{t:+g}" if t else "0" for t in _thinned(shown)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_ylim(-0.7, len(arms) - 0.3)
    ax.set_yticks(list(range(len(arms) - 1, -1, -1)), [r.arm for r in arms])
    base = rows[0] if rows else None
    percent = " %" if scale > 1 else ""
    what = (f"vs {base.arm} {base.mean * scale:.2f} ± {base.std * scale:.2f}{percent}"
            if base is not None and base.n and math.isfinite(base.mean) else "")
    ax.set_xlabel(f"Δ {info.metric} ({unit.strip() or 'difference'}), 95% interval; "
                  "filled: significant")
    ax.set_title(f"{info.title}\n{what}".strip(), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
