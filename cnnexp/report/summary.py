"""The report's first section: where the experiment stands, one line per stage of the routine
(sanity -> search -> ablation -> final test figure), each with its headline and noise, then
the next step the routine asks for. Read from the newest top-level run of each kind."""

from __future__ import annotations

import html
import json
import math
from typing import Any

from cnnexp.report import html as H
from cnnexp.report import overlay, routine
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
        seeds = f"{int(m['confirm_seeds'])} seeds" if "confirm_seeds" in m else "seeds"
        line = (f"best configuration {m['confirm_best_mean']:.4f} vs the recipe "
                f"{m.get('confirm_recipe_mean', math.nan):.4f} over {seeds}: {verdict}")
        if "confirm_p" in m:
            # "within noise" with what the test could have seen: a weak test is not a tie
            could = (f"; could detect >= {m['confirm_detectable'] * 100:.2f} pp"
                     if verdict == "within noise" and math.isfinite(
                         m.get("confirm_detectable", math.nan)) else "")
            line += (f" ({m.get('confirm_delta', math.nan) * 100:+.2f} pp, "
                     f"paired p={m['confirm_p']:.2g}{could})")
        return line
    if "best_value" in m:
        return f"best trial {m['best_value']:.4f} (not confirmed over seeds)"
    return f"search {r['status'].lower()}, no best trial yet"


def _ablation(r: dict[str, Any]) -> str:
    """The baseline with its noise, then only the arms whose effect beats the noise."""
    text = query.artifact_text(r["run_id"], "ablation/summary.json")
    if not text:
        return f"ablation {r['status'].lower()}"
    summary = json.loads(text)
    rows = summary.get("rows", [])
    base = rows[0] if rows else {}
    head = (f"baseline {summary.get('metric', '')} {_number(base.get('mean')):.4f} ± "
            f"{_number(base.get('std')):.4f} over {summary.get('seeds')} seeds")
    arms = rows[1:]

    def said(row: dict[str, Any]) -> str:
        if not isinstance(row.get("delta"), float):  # every seed diverged: no mean, no test
            return (f"{row['arm']}: {row.get('verdict')} ({row.get('diverged', '?')} of "
                    f"{row.get('seeds', '?')} seeds)")
        return (f"{row['arm']}: {row['verdict']} ({row['delta'] * 100:+.2f} pp, "
                f"p={_number(row.get('p_value')):.2g})")

    shown = [said(row) for row in arms if row.get("verdict") in ("helps", "hurts", "diverged")
             or not isinstance(row.get("delta"), float)]
    if shown:
        rest = len(arms) - len(shown)
        return (f"{head}; {'; '.join(shown)}"
                + (f"; the other {rest} arm(s) within noise" if rest else ""))
    return f"{head}; none of the {len(arms)} arms differs from it beyond the noise"


def _number(value: Any) -> float:
    """A JSON number, NaN for null (summary.json writes NaN as null)."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def _final(r: dict[str, Any]) -> str:
    m = r["metrics"]
    weights = r["tags"].get(T.TESTED_WEIGHTS, "")
    return (f"test_acc {m['test_acc']:.4f} ± {m.get('test_acc_se', math.nan):.4f} "
            f"(n={int(m.get('test_images', 0))}, {weights})")


def _tuned(found: routine.Routine) -> str:
    search = found.search or {}
    if not found.changes:
        return "the search kept the start recipe's values"
    changes = ", ".join(f"{c.key} {c.start} → {c.tuned}" for c in found.changes)
    return (f"{search['tags'].get(T.RECIPE, '?')} → best.yaml of "
            f"{search['tags'].get(T.STUDY, search['name'])}: {changes}")


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
    # the run the routine stands on: the tuned recipe's test run (the start recipe's, often
    # trained later for comparison, is under-fitted by design), else the newest training run
    trained = routine.find(search, by_kind.get("train", [])).tuned or _newest(by_kind.get("train", []))
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
    """One sentence: the final figure if there is one (beside the start recipe's, when the
    newest search's routine has both), and what the search concluded."""
    parts = []
    search = _newest(by_kind.get("search", []))
    found = routine.find(search, by_kind.get("train", []))
    if found.tuned and found.start:
        parts.append(f"Tuned: {_final(found.tuned)}; start recipe: {_final(found.start)}; "
                     f"difference {routine.gap(found.tuned, found.start)}")
    else:
        tested = found.tuned or _tested(by_kind)
        if tested:
            parts.append(f"Final: {_final(tested)}")
    if search and search["tags"].get(T.CONFIRM_VERDICT):
        parts.append(f"search: {_search(search)}")
    sanity = _newest(by_kind.get("sanity", []))
    if not parts and sanity:
        parts.append(_sanity(sanity).capitalize())
    return " · ".join(parts) or "Nothing measured yet"


def section(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    """The routine on one page: each step's standing, its wall time and its run."""
    sanity, search, ablation = (_newest(by_kind.get(k, [])) for k in ("sanity", "search", "ablation"))
    found = routine.find(search, by_kind.get("train", []))
    final = found.tuned or _tested(by_kind)
    rows: list[tuple[str, str, dict[str, Any] | None]] = [
        ("Sanity", _sanity(sanity) if sanity else "not run", sanity),
        ("Search", _search(search) if search else "not run", search)]
    if search:
        rows.append(("Tuned recipe", _tuned(found), None))
    rows.append(("Final test figure" + (" (tuned recipe)" if found.tuned else ""),
                 _final(final) if final else "not measured (`cnnexp train ... --test`)", final))
    if search:
        rows.append(("Start recipe's test figure",
                     _final(found.start) if found.start else
                     f"not measured: `cnnexp train {search['tags'].get(T.RECIPE, 'RECIPE')} "
                     "--test` gives the figure to compare with", found.start))
    rows.append(("Ablation", _ablation(ablation) if ablation else "not run", ablation))
    spent = [routine.seconds(r) for r in (sanity, search, final)]
    total = (routine.duration(sum(spent)) if all(s is not None for s in spent)
             else "—")
    curves = overlay.runs([("start recipe", found.start), ("tuned recipe", found.tuned)],
                          "Start recipe vs tuned recipe: the two test runs' curves",
                          "start vs tuned curves") if found.tuned and found.start else ""
    return (f"<h2>Summary</h2><p class=headline><b>{html.escape(headline(by_kind))}</b></p>"
            f"{_table(rows)}<p>Routine time (sanity + search + final run): {total}.</p>"
            f"<p><b>Next step:</b> {H.inline(next_step(by_kind))}</p>{curves}")


def _table(rows: list[tuple[str, str, dict[str, Any] | None]]) -> str:
    """Step, standing, wall time and a short run id per row."""
    body = []
    for step, text, r in rows:
        time_cell = routine.duration(routine.seconds(r)) if r else ""
        run_cell = f"<code>{html.escape(r['run_id'][:8])}</code>" if r else ""
        body.append(f"<tr><td>{html.escape(step)}</td><td>{html.escape(text)}</td>"
                    f"<td>{time_cell}</td><td>{run_cell}</td></tr>")
    return ("<table><tr><th>Step</th><th>Where it stands</th><th>Wall time</th><th>Run</th>"
            f"</tr>{''.join(body)}</table>")
