"""Figures draw text as written (mathtext off), and log axes still label their ticks with plain
numbers: matplotlib's default log labels are mathtext and printed as `$\\mathdefault{10^{-1}}$`."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnexp.diagnose.plots import curves_figure
from cnnexp.plotstyle import log_scale, plain_text


def _labels(fig: Figure) -> list[str]:
    FigureCanvasAgg(fig).draw()
    return [t.get_text() for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
            for t in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)] if t.get_text()]


def test_log_axes_label_ticks_with_plain_numbers() -> None:
    plain_text()
    fig = Figure()
    ax = fig.add_subplot()
    ax.bar(range(3), [0.06, 0.1, 0.4])  # less than a decade: minor ticks are labelled too
    log_scale(ax, "y")
    wide = fig.add_subplot(2, 1, 2)
    wide.plot([1e-5, 1e-3, 10], [1, 2, 3])
    log_scale(wide, "x")
    labels = _labels(fig)
    assert labels and not any("$" in t or "mathdefault" in t for t in labels), labels
    # each label is a number as written (matplotlib prints a unicode minus)
    assert all(float(t.replace("\u2212", "-")) > 0 for t in labels if "e" in t), labels
    assert "1e\u221201" in labels and "4e\u221201" in labels, labels  # a minor tick too


def test_loss_curves_on_a_log_axis_read_plainly() -> None:
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "train_acc": 0.5,
                "val_acc": 0.5} for e in range(1, 6)]
    labels = _labels(curves_figure(history))
    assert not any("$" in t for t in labels), labels
