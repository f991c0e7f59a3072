"""The report's first section: where the experiment stands, one line per stage of the routine
(sanity -> search -> ablation -> final test figure), each with its headline and noise, then
the next step the routine asks for. Read from the newest top-level run of each kind."""

from __future__ import annotations

import html
import json
import math
from typing import Any

from cnnexp.report import html as H
from cnnexp.tracking import query
from cnnexp.tracking import tags as T


def _newest(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(runs, key=lambda r: r["start_time"] or 0) if runs else None


def _tested(by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The newest training run with a test figure."""
    return _newest([r for r in by_kind.get("train", []) if "test_acc" in r["metrics"]])


def _sanity(r: dict[str, Any]) -> str:
    verdict = r["tags"].get(T.STATUS) or ("passed" if r["metrics"].get("passed") else "failed")
    return f"sanity checks {verdict}"


def _search(r: dict[str, Any]) -> str:
    m, verdict = r["metrics"], r["tags"].get(T.CONFIRM_VERDICT)
    if verdict and "confirm_best_mean" in m:
        line = (f"best configuration {m['confirm_best_mean']:.4f} vs the recipe "
                f"{m.get('confirm_recipe_mean', math.nan):.4f} over seeds: {verdict}")
        if "confirm_p" in m:
            line += f" (paired p={m['confirm_p']:.2g})"
        return line
    if "best_value" in m:
        return f"best trial {m['best_value']:.4f} (not confirmed over seeds)"
    return f"search {r['status'].lower()}, no best trial yet"


def _ablation(r: dict[str, Any]) -> str:
    text = query.artifact_text(r["run_id"], "ablation/summary.json")
    if not text:
        return f"ablation {r['status'].lower()}"
    summary = json.loads(text)
    rows = summary.get("rows", [])
    named = [f"{row['arm']}: {row['verdict']} ({row['delta']:+.4f})" for row in rows[1:]
             if isinstance(row.get("delta"), float) and math.isfinite(row["delta"])]
    base = rows[0] if rows else {}
    head = (f"baseline {summary.get('metric', '')} {base.get('mean', math.nan):.4f} ± "
            f"{base.get('std', math.nan):.4f} over {summary.get('seeds')} seeds")
    return head + ("; " + "; ".join(named) if named else "")


def _final(r: dict[str, Any]) -> str:
    m = r["metrics"]
    weights = r["tags"].get(T.TESTED_WEIGHTS, "")
    return (f"test_acc {m['test_acc']:.4f} ± {m.get('test_acc_se', math.nan):.4f} "
            f"(n={int(m.get('test_images', 0))}, {weights})")


def next_step(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    """What the routine asks for next, given what the experiment holds."""
    sanity = _newest(by_kind.get("sanity", []))
    search = _newest(by_kind.get("search", []))
    tested = _tested(by_kind)
    if sanity is None:
        return "run `cnnexp sanity RECIPE` before spending compute"
    if sanity["tags"].get(T.STATUS) == "failed":
        return "fix what the sanity checks found (their hints are below), then run them again"
    if search is None and not tested:
        return "search the learning rate and regularisation: `cnnexp search RECIPE`"
    edges = int(float(search["tags"].get(T.EDGE_WARNINGS, 0) or 0)) if search else 0
    if edges and not tested:
        return (f"the best value sits at the edge of its range ({edges} warning(s) in the "
                "search section): widen that range and search again before trusting best.yaml")
    trained = _newest(by_kind.get("train", []))
    if trained and trained["tags"].get(T.DIAGNOSIS) not in (None, "healthy", "unvalidated"):
        return (f"the newest training run reads '{trained['tags'][T.DIAGNOSIS]}': apply its "
                "remedies (training section) before spending more compute")
    if not tested:
        return ("train the chosen configuration once with the final figure: `cnnexp train "
                "outputs/search/STUDY/best.yaml --test`")
    if not by_kind.get("ablation"):
        return ("explain the result: `cnnexp ablate` removes one component at a time from the "
                "baseline over seeds")
    return ("done: report the test figure with its standard error; a new idea starts again "
            "from validation, never from the test split")


def headline(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    """One sentence: the final figure if there is one, and what the search concluded."""
    parts = []
    tested = _tested(by_kind)
    if tested:
        parts.append(f"Final: {_final(tested)}")
    search = _newest(by_kind.get("search", []))
    if search and search["tags"].get(T.CONFIRM_VERDICT):
        parts.append(f"search: {_search(search)}")
    sanity = _newest(by_kind.get("sanity", []))
    if not parts and sanity:
        parts.append(_sanity(sanity).capitalize())
    return " · ".join(parts) or "Nothing measured yet"


def section(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for kind, label, line in (("sanity", "Sanity", _sanity), ("search", "Search", _search),
                              ("ablation", "Ablation", _ablation)):
        r = _newest(by_kind.get(kind, []))
        rows.append([label, line(r) if r else "not run", f"<code>{r['run_id'][:8]}</code>"
                     if r else ""])
    tested = _tested(by_kind)
    rows.append(["Final test figure", _final(tested) if tested else "not measured (`cnnexp "
                 "train ... --test`)", f"<code>{tested['run_id'][:8]}</code>" if tested else ""])
    return (f"<h2>Summary</h2><p class=headline><b>{html.escape(headline(by_kind))}</b></p>"
            f"{_table(rows)}<p><b>Next step:</b> "
            f"{H.inline(next_step(by_kind))}</p>")


def _table(rows: list[list[str]]) -> str:
    """Like html.table, but the run column holds markup."""
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{c}</td></tr>"
                   for a, b, c in rows)
    return f"<table><tr><th>Step</th><th>Where it stands</th><th>Run</th></tr>{body}</table>"
