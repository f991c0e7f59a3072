"""Search plots: the metric against each numeric parameter (one slice per parameter, coloured
by stage, log axes where the parameter is searched in log space, dead trials marked apart),
Optuna's parallel-coordinates plot over every stage, the optimisation history, and fANOVA
parameter importance."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cnnexp.search.results import StageResult

# fANOVA fits a random forest to (params -> value): on fewer completed trials its ranking is
# mostly noise (the demo's 8-trial stage ranked the learning rate last), so it is withheld
MIN_IMPORTANCE_TRIALS = 20
COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    from cnnexp.plotstyle import plain_text

    plain_text()
    return Figure(figsize=(w, h), layout="constrained")


def param_scatter(results: list[StageResult], metric: str) -> Figure | None:
    from cnnexp.plotstyle import log_scale
    from cnnexp.search.narrow import Range

    params = [p for p, v in results[0].space.items() if isinstance(v, Range)]
    if not params:
        return None
    fig = _figure(4.2 * len(params), 3.4)
    axes = fig.subplots(1, len(params), squeeze=False)[0]
    for ax, path in zip(axes, params, strict=True):
        dead_x: list[float] = []
        for i, r in enumerate(results):
            pts = [t for t in r.trials if t.value is not None and path in t.params
                   and math.isfinite(t.value) and not _dead(t)]
            done = [(t.params[path], t.value) for t in pts if t.state.name == "COMPLETE"]
            pruned = [(t.params[path], t.value) for t in pts if t.state.name != "COMPLETE"]
            dead_x += [t.params[path] for t in r.trials if _dead(t) and path in t.params]
            colour = COLOURS[i % len(COLOURS)]
            if done:
                ax.scatter(*zip(*done, strict=True), color=colour, label=r.plan.name, s=22)
            if pruned:
                ax.scatter(*zip(*pruned, strict=True), color=colour, marker="x", s=22,
                           label=f"{r.plan.name} (pruned)")
        if dead_x:  # learned nothing or diverged: drawn apart, under the axis, not as values
            ax.scatter(dead_x, [0.02] * len(dead_x), transform=ax.get_xaxis_transform(),
                       marker="x", color="0.5", s=26, label="not learning / diverged")
            rng = r.space.get(path)
            if isinstance(rng, Range):
                ax.axvspan(rng.low, rng.high, color=colour, alpha=0.06)
        space = results[0].space[path]
        if isinstance(space, Range) and space.log:
            log_scale(ax, "x")
        ax.set_xlabel(path)
        ax.set_ylabel(metric)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{metric} vs parameters (shaded: each stage's range)")
    return fig


def _dead(t: Any) -> bool:
    """A trial that learned nothing (at chance) or diverged."""
    from cnnexp.search import attrs as A

    return t.user_attrs.get(A.DIAGNOSIS) == "not_learning" or \
        str(t.user_attrs.get(A.REASON, "")).startswith("diverged")


def parallel(results: list[StageResult]) -> Figure | None:
    """Optuna's parallel-coordinates plot over the completed trials of every stage (log axes
    for log-scaled parameters; colour = the metric)."""
    import optuna
    from optuna.visualization import matplotlib as om

    done = [t for r in results for t in r.trials
            if t.state.name == "COMPLETE" and t.value is not None and not _dead(t)]
    if len(done) < 2 or not done[0].params:
        return None
    merged = optuna.create_study(direction=results[0].direction)
    with warnings.catch_warnings():  # the matplotlib backend is "experimental" in Optuna
        warnings.simplefilter("ignore")
        merged.add_trials(done)
        ax = om.plot_parallel_coordinate(merged)
    fig = ax.figure
    fig.set_size_inches(max(6.0, 1.6 * len(done[0].params) + 2), 4.2)
    ax.set_title(f"parallel coordinates: {len(done)} completed trials, every stage")
    return fig


def history(results: list[StageResult], metric: str, direction: str) -> Figure:
    """Each trial in finishing order, coloured by stage, with the running best."""
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    order = sorted(((t.datetime_complete, i, t) for i, r in enumerate(results) for t in r.trials
                    if t.value is not None and t.datetime_complete is not None),
                   key=lambda x: (x[0], x[1]))
    best_so_far, best = [], None
    for n, (_, i, t) in enumerate(order):
        ax.scatter(n, t.value, color=COLOURS[i % len(COLOURS)], s=18,
                   marker="o" if t.state.name == "COMPLETE" else "x")
        if t.state.name == "COMPLETE":
            better = best is None or (t.value > best if direction == "maximize" else t.value < best)
            best = t.value if better else best
        best_so_far.append(best if best is not None else math.nan)
    ax.plot(range(len(best_so_far)), best_so_far, color="black", lw=1, label="best so far")
    for i, r in enumerate(results):
        ax.scatter([], [], color=COLOURS[i % len(COLOURS)], label=r.plan.name)
    ax.set_xlabel("trial (finishing order)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return fig


def importance_scores(results: list[StageResult]
                      ) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """fANOVA importance per stage with enough completed trials, and every stage's count of
    completed trials (what decides whether importance is shown)."""
    import optuna

    scores: dict[str, dict[str, float]] = {}
    counted: dict[str, int] = {}
    for r in results:
        done = sum(t.state.name == "COMPLETE" for t in r.trials)
        counted[r.plan.name] = done
        if done < MIN_IMPORTANCE_TRIALS:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                scores[r.plan.name] = optuna.importance.get_param_importances(
                    r.study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
            except (ValueError, RuntimeError):
                continue
    return scores, counted


def importance_text(scores: dict[str, dict[str, float]], counted: dict[str, int]) -> str:
    """Which parameters matter, in one line per stage; or why that is not said."""
    if not scores:
        seen = ", ".join(f"{s} {n}" for s, n in counted.items())
        return (f"Parameter importance: withheld: fANOVA needs >= {MIN_IMPORTANCE_TRIALS} "
                f"completed trials in a stage, and the stages completed {seen}; with fewer, "
                "its ranking is noise. The stage findings above say whether any parameter "
                "made a measurable difference.")
    lines = []
    for stage, imp in scores.items():
        top = ", ".join(f"`{p}` {v:.2f}" for p, v in list(imp.items())[:4])
        lines.append(f"Parameter importance ({stage}, fANOVA over {counted[stage]} trials, "
                     f"share of the variance): {top}")
    return "\n\n".join(lines)


def importance(results: list[StageResult],
               found: tuple[dict[str, dict[str, float]], dict[str, int]] | None = None
               ) -> Figure | None:
    """fANOVA importance per stage with enough completed trials (None if no stage has)."""
    scores, counted = found or importance_scores(results)
    if not scores:
        return None
    fig = _figure(4.2 * len(scores), 3.2)
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, (stage, imp) in zip(axes, scores.items(), strict=True):
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names], color="tab:blue")
        ax.set_title(f"{stage}: fANOVA importance ({counted[stage]} trials)")
        ax.set_xlim(0, 1)
    return fig


def figures(results: list[StageResult], metric: str, direction: str,
            found: tuple[dict[str, dict[str, float]], dict[str, int]] | None = None
            ) -> dict[str, Figure]:
    out = {"history.png": history(results, metric, direction)}
    for name, fig in (("params.png", param_scatter(results, metric)),
                      ("parallel.png", parallel(results)),
                      ("importance.png", importance(results, found))):
        if fig is not None:
            out[name] = fig
    return out
