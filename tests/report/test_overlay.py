"""Overlaid curves: one colour a run, validation solid and training dashed."""

from __future__ import annotations

import math

import pytest

from cnnexp.report import overlay


def _hist(*vals: float) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train_acc": v + 0.05, "val_acc": v, "train_loss": 1 - v,
             "val_loss": 1.1 - v} for i, v in enumerate(vals)]


def test_every_run_gets_a_solid_val_and_a_dashed_train_line_in_one_colour() -> None:
    fig = overlay.figure([("start", _hist(0.5, 0.6)), ("tuned", _hist(0.7, 0.8, 0.85))])
    acc, loss = fig.axes
    lines = [(ln.get_linestyle(), ln.get_color(), len(ln.get_xdata())) for ln in acc.lines]
    assert lines == [("-", "C0", 2), ("--", "C0", 2), ("-", "C1", 3), ("--", "C1", 3)]
    assert len(loss.lines) == 4
    assert [t.get_text() for t in acc.get_legend().get_texts()] == ["start", "tuned"]


def test_mean_history_averages_seeds_epoch_by_epoch() -> None:
    seeds = [_hist(0.5, 0.7), _hist(0.6), [{"epoch": 1, "val_acc": math.nan}]]
    mean = overlay.mean_history(seeds)
    assert [h["epoch"] for h in mean] == [1, 2]
    assert mean[0]["val_acc"] == pytest.approx(0.55)  # the NaN seed is left out, not averaged in
    assert mean[1]["val_acc"] == 0.7  # only one seed reached epoch 2


def test_no_curves_no_image() -> None:
    assert overlay.image([("a", []), ("b", [])], "t", "alt") == ""
