"""Ablation table rendering from known rows: Markdown, HTML, CSV and the chart."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from cnnexp.ablate.stats import SeedResult, summarize
from cnnexp.ablate.table import TableInfo, bar_chart, html_page, markdown, write_csv


def _seeds(values: list[float]) -> list[SeedResult]:
    return [SeedResult(value=v, train_acc=0.99, val_acc=v,
                       status="diverged" if math.isnan(v) else "completed", params=1234,
                       seconds=2.5) for v in values]


def _rows(cumulative: bool = False):
    return summarize([("start", _seeds([0.50, 0.52, 0.51])), ("+bn", _seeds([0.60, 0.62, 0.61])),
                      ("+aug", _seeds([0.61, math.nan])), ("+reg", _seeds([math.nan]))],
                     cumulative=cumulative)


def _info(mode: str = "leave-one-out", retuned: bool = False) -> TableInfo:
    return TableInfo("Ablation t", "val_acc", True, mode, {"+bn": "arch.norm=batch"},
                     ["a note | with a pipe"], retuned)


def test_markdown_table_rows_and_formatting() -> None:
    text = markdown(_rows(), _info())
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 4  # header + one row per arm
    assert lines[0].startswith("| Arm | Change | val_acc (mean ± std) | n | Δ vs baseline |")
    assert "| +bn | arch.norm=batch | 61.00 ± 1.00% | 3 | +10.00 pp | <0.001 | helps |" in text
    assert "| +aug | — | 61.00% | 1/2 | +10.00 pp |" in text  # one seed left: no std, no test
    assert "| +reg | — | diverged | 0/1 | n/a | n/a | diverged |" in text
    assert "- a note | with a pipe" in text


def test_cumulative_and_retuned_columns() -> None:
    rows = summarize([("start", _seeds([0.5, 0.52])), ("+bn", _seeds([0.6, 0.62]))],
                     cumulative=True, lrs=[0.05, 0.0123])
    text = markdown(rows, _info("cumulative", retuned=True))
    assert "Δ vs previous | Δ vs start |" in text and "LR (retuned)" in text
    assert text.rstrip().splitlines()[-3].endswith("| 0.0123 |")


def test_html_csv_and_chart(tmp_path: Path) -> None:
    rows, info = _rows(), _info()
    page = html_page(rows, info)
    assert page.count("<tr>") == 1 + 4 and "a note | with a pipe" in page
    write_csv(rows, info, tmp_path / "t.csv")
    with (tmp_path / "t.csv").open() as fh:
        recs = list(csv.DictReader(fh))
    assert [r["arm"] for r in recs] == ["start", "+bn", "+aug", "+reg"]
    assert float(recs[1]["mean"]) == pytest.approx(0.61) and recs[3]["verdict"] == "diverged"
    fig = bar_chart(rows, info)
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["+bn", "+aug", "+reg"]  # top to bottom


def test_chart_holds_a_huge_and_a_small_effect_and_marks_significance(tmp_path: Path) -> None:
    rows = summarize([("baseline", _seeds([0.75, 0.752, 0.748])),
                      ("no batchnorm", _seeds([0.21, 0.22, 0.215])),   # -53 pp, significant
                      ("with shifts", _seeds([0.745, 0.738, 0.75]))])  # -0.6 pp, noise
    fig = bar_chart(rows, _info())
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo <= -53.5 and hi >= 53.5  # nothing zoomed off the chart
    assert ax.get_xscale() == "symlog"
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
    face = {round(float(line.get_xdata()[0])): line.get_markerfacecolor() for line in lines}
    assert face[-54] != "white" and face[-1] == "white"  # filled = significant
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("-53.") and "p=" in t for t in texts), texts
    fig.savefig(tmp_path / "c.png")


def test_diagnosis_column_summarises_the_seeds() -> None:
    def seeds(*verdicts: str) -> list[SeedResult]:
        return [SeedResult(value=0.9, train_acc=0.95, val_acc=0.9, diagnosis=v) for v in verdicts]

    rows = summarize([("baseline", seeds("healthy", "healthy")),
                      ("no aug", seeds("overfitting", "healthy", "overfitting")),
                      ("old runs", seeds("", ""))])
    assert [r.diagnosis for r in rows] == ["healthy", "overfitting 2/3", ""]
    text = markdown(rows, _info())
    head = next(line for line in text.splitlines() if line.startswith("| Arm"))
    assert "| Δ gap | Diagnosis | Params |" in head
    col = [c.strip() for c in head.split("|")].index("Diagnosis")
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")][col]
             for line in text.splitlines() if line.startswith("| ") and line != head}
    assert cells == {"baseline": "healthy", "no aug": "overfitting 2/3", "old runs": "—"}
