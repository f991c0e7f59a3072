"""Noise, ties and stages without signal, as pure functions over numbers."""

from __future__ import annotations

import math

import pytest

from cnnexp.noise import binomial_se, noise_band, within_noise
from cnnexp.search.narrow import Range, edge_side
from cnnexp.search.signal import Point, analyse, edge_stands_out, rank, top_gap_text


def pts(*values: float, second: float = math.nan, **params: list) -> list[Point]:
    return [Point(i, v, second, {k: vs[i] for k, vs in params.items()})
            for i, v in enumerate(values)]


def test_binomial_noise_of_an_accuracy() -> None:
    assert binomial_se(0.9, 100) == pytest.approx(0.03)
    assert binomial_se(0.9972, 359) == pytest.approx(0.00279, abs=1e-5)
    # the demo's fine stage: 0.9972 vs 0.9916 on 359 images is within noise
    assert within_noise(0.9972, 0.9916, 359)
    assert not within_noise(0.99, 0.90, 359)
    assert noise_band(1.0, 1.0, 359) == pytest.approx(1 / 359)  # one image, not zero


def test_exact_ties_go_to_the_lower_loss_not_the_trial_order() -> None:
    points = [Point(0, 0.9972, 0.05), Point(1, 0.9972, 0.02), Point(2, 0.99, 0.01)]
    assert [p.number for p in rank(points, "val_acc", "maximize")] == [1, 0, 2]
    # a loss metric breaks its ties on the accuracy (higher first)
    losses = [Point(0, 0.3, 0.90), Point(1, 0.3, 0.95)]
    assert [p.number for p in rank(losses, "val_loss", "minimize")] == [1, 0]


def test_every_trial_at_chance_with_the_loss_stuck_is_lr_too_low() -> None:
    s = analyse(pts(0.10, 0.11, 0.09), metric="val_acc", eval_size=287, classes=10,
                last_train_losses=[2.30, 2.31, 2.29])
    assert not s.signal and "loss is not moving" in s.reading and "too low" in s.reading
    assert "cnnexp sanity" in s.reading


def test_chance_with_diverged_trials_is_lr_too_high() -> None:
    s = analyse(pts(0.10, 0.10), metric="val_acc", eval_size=287, classes=10, diverged=3,
                last_train_losses=[math.nan, 40.0])
    assert not s.signal and "too high" in s.reading
    none = analyse([], metric="val_acc", eval_size=287, classes=10, diverged=4)
    assert not none.signal and "too high" in none.reading


def test_all_within_noise_is_no_signal_and_says_so() -> None:
    s = analyse(pts(0.9972, 0.9944, 0.9916), metric="val_acc", eval_size=359, classes=10)
    assert not s.signal and "within noise of the best" in s.reading
    assert s.within == [0, 1, 2]


def test_a_clear_best_is_signal_with_its_noise() -> None:
    s = analyse(pts(0.97, 0.96, 0.60, 0.12), metric="val_acc", eval_size=1000, classes=10)
    assert s.signal and s.within == [0, 1]
    assert s.best_text() == f"0.9700 ± {binomial_se(0.97, 1000):.4f} (n=1000)"
    assert "2 trials within noise of the best" in s.noise_text()
    assert "within noise of each other" not in top_gap_text(pts(0.97, 0.96, 0.60), 1000)


def test_edge_value_must_beat_the_interior_beyond_noise() -> None:
    r = Range(1e-4, 1.0, log=True)
    in_upper = lambda v: edge_side(v, r) == "upper"  # noqa: E731
    flat = pts(0.975, 0.972, 0.970, **{"opt.lr": [0.9, 0.01, 0.001]})
    assert not edge_stands_out("opt.lr", "upper", flat[0], flat, metric="val_acc",
                               direction="maximize", eval_size=359, in_edge=in_upper)
    rising = pts(0.97, 0.80, 0.60, **{"opt.lr": [0.9, 0.01, 0.001]})
    assert edge_stands_out("opt.lr", "upper", rising[0], rising, metric="val_acc",
                           direction="maximize", eval_size=359, in_edge=in_upper)
