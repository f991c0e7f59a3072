"""Overlaid learning curves across runs, so "how do these runs differ" is one glance: the start
recipe against the tuned one, a search's top trials, an ablation's arms (mean over seeds).
Accuracy on the left, loss on the right; validation solid, training dashed, one colour a run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnnexp.diagnose.rules import CURVE_KEYS as KEYS
from cnnexp.plotstyle import plain_text
from cnnexp.report import html as H
from cnnexp.tracking import query

plain_text()  # run and arm names are user text: `$` is not math

MAX_SERIES = 8  # beyond this the colours repeat and the panel stops reading at a glance

History = Sequence[Mapping[str, float]]


def figure(series: Sequence[tuple[str, History]], title: str = "") -> Figure:
    fig = Figure(figsize=(10, 3.6))
    ax_acc, ax_loss = fig.subplots(1, 2)
    for i, (label, hist) in enumerate(series[:MAX_SERIES]):
        colour = f"C{i}"
        epochs = [int(h.get("epoch", k + 1)) for k, h in enumerate(hist)]
        for ax, metric in ((ax_acc, "acc"), (ax_loss, "loss")):
            for split, ls in (("val", "-"), ("train", "--")):
                ys = [h.get(f"{split}_{metric}", math.nan) for h in hist]
                if any(math.isfinite(y) for y in ys):
                    ax.plot(epochs, ys, ls, color=colour, lw=1.6 if split == "val" else 1.0,
                            label=f"{label}" if (split == "val" and metric == "acc") else None)
    for ax, name in ((ax_acc, "accuracy"), (ax_loss, "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right", title="val solid, train dashed",
                  title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mean_history(histories: Sequence[History]) -> list[dict[str, float]]:
    """Epoch-wise mean over seeds (epochs some seeds did not reach use those that did)."""
    by_epoch: dict[int, dict[str, list[float]]] = {}
    for hist in histories:
        for h in hist:
            slot = by_epoch.setdefault(int(h["epoch"]), {})
            for k in KEYS:
                if k in h and math.isfinite(h[k]):
                    slot.setdefault(k, []).append(h[k])
    return [{"epoch": e, **{k: sum(v) / len(v) for k, v in slot.items()}}
            for e, slot in sorted(by_epoch.items())]


def history(run_id: str) -> list[dict[str, float]]:
    return query.metric_history(run_id, KEYS)


def image(series: Sequence[tuple[str, History]], title: str, alt: str) -> str:
    """The figure as an <img> for the report, or "" when no run has curves."""
    from cnnexp.diagnose.plots import png_bytes

    drawn = [(label, h) for label, h in series if h]
    if not drawn:
        return ""
    return H.img(png_bytes(figure(drawn, title)), alt, title)


def runs(records: Sequence[tuple[str, Mapping[str, Any]]], title: str, alt: str) -> str:
    """Overlay of (label, run record) pairs."""
    return image([(label, history(r["run_id"])) for label, r in records], title, alt)


def ablation_arms(parent: Mapping[str, Any], title: str) -> str:
    """Each arm's curves averaged over its seeds."""
    series = []
    for arm in query.child_runs(parent["run_id"], parent["experiment_id"]):
        seeds = query.child_runs(arm["run_id"], arm["experiment_id"])
        series.append((arm["name"], mean_history([history(s["run_id"]) for s in seeds])))
    return image(series, title, "ablation arms' curves")
