"""Learning-curve diagnosis on synthetic histories: one per class, exact expectations."""

from __future__ import annotations

import math

import pytest

from cnnexp.diagnose.rules import DIAGNOSES, Thresholds, diagnose, parse_thresholds
from cnnexp.errors import BadInput


def hist(train_acc, val_acc, train_loss=None, val_loss=None):
    """Per-epoch dicts; losses default to 1 - acc (a monotone stand-in)."""
    train_loss = train_loss or [1 - a for a in train_acc]
    val_loss = val_loss or [1 - a for a in val_acc]
    return [{"epoch": i + 1, "train_acc": ta, "val_acc": va, "train_loss": tl, "val_loss": vl}
            for i, (ta, va, tl, vl) in enumerate(zip(train_acc, val_acc, train_loss, val_loss,
                                                      strict=True))]


HEALTHY = hist([0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.985, 0.99, 0.99, 0.99],
               [0.55, 0.8, 0.9, 0.94, 0.96, 0.97, 0.975, 0.978, 0.978, 0.979])
OVERFIT = hist([0.6, 0.8, 0.9, 0.96, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0],
               [0.6, 0.75, 0.82, 0.85, 0.86, 0.85, 0.84, 0.83, 0.82, 0.80],
               val_loss=[1.0, 0.7, 0.55, 0.5, 0.48, 0.52, 0.58, 0.63, 0.68, 0.74])
UNDERFIT = hist([0.30, 0.42, 0.50, 0.54, 0.55, 0.555, 0.556, 0.556],
                [0.31, 0.43, 0.50, 0.53, 0.54, 0.544, 0.545, 0.545])
RISING = hist([0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85],
              [0.3, 0.4, 0.5, 0.6, 0.68, 0.74, 0.79, 0.84])


def test_healthy():
    d = diagnose(HEALTHY)
    assert d.diagnosis == "healthy"
    assert d.evidence["gap"] == pytest.approx(0.011)
    assert d.evidence["window"] == 3  # ceil(0.25 * 10)
    assert d.evidence["val_acc_gain"] == pytest.approx(0.979 - 0.975)  # epoch 7 -> 10
    assert d.not_remedies == []


def test_overfitting_with_evidence_and_course_remedies():
    d = diagnose(OVERFIT)
    assert d.diagnosis == "overfitting"
    ev = d.evidence
    assert ev["gap"] == pytest.approx(0.2)
    assert ev["gap_min"] == pytest.approx(0.0) and ev["gap_min_epoch"] == 1
    assert ev["val_loss_min_epoch"] == 5 and ev["best_epoch"] == 5
    assert ev["val_loss_rise"] == pytest.approx((0.74 - 0.48) / 0.48, abs=1e-4)
    assert any("regularisation" in r for r in d.remedies)
    assert any("epoch 5" in r for r in d.remedies)
    assert any(r.startswith("Training longer") for r in d.not_remedies)
    assert "gap 0.200" in d.summary


def test_underfitting():
    d = diagnose(UNDERFIT)
    assert d.diagnosis == "underfitting"
    assert d.evidence["train_acc"] == pytest.approx(0.556)
    assert any("bigger model" in r for r in d.remedies)
    assert any(r.startswith("More training data") for r in d.not_remedies)


def test_not_converged_when_validation_still_improves():
    d = diagnose(RISING)
    assert d.diagnosis == "not_converged"
    assert d.evidence["window"] == 2
    assert d.evidence["val_acc_gain"] == pytest.approx(0.84 - 0.74)
    assert "train.epochs=16" in d.remedies[0] and "still improving" in d.remedies[0]


def test_not_converged_on_val_loss_alone():
    flat_acc = [0.5, 0.9, 0.95, 0.96, 0.96, 0.96, 0.96, 0.96]
    h = hist(flat_acc, flat_acc, val_loss=[2.0, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    d = diagnose(h)
    assert d.diagnosis == "not_converged"
    assert d.evidence["val_loss_drop"] == pytest.approx(0.4)


def test_unstable_loss_spike():
    h = hist([0.5, 0.7, 0.8, 0.6, 0.85, 0.9, 0.92, 0.93], [0.5, 0.7, 0.8, 0.75, 0.85, 0.9, 0.91,
                                                          0.92],
             train_loss=[1.0, 0.6, 0.4, 1.2, 0.3, 0.25, 0.22, 0.2])
    d = diagnose(h)
    assert d.diagnosis == "unstable"
    assert d.evidence["loss_spikes"] == [4]
    assert d.evidence["acc_drops"] == []


def test_an_early_dip_the_run_recovers_from_is_not_instability():
    """One-cycle's warm-up at its peak LR often costs a few points of val_acc for an epoch."""
    va = [0.5, 0.8, 0.65, 0.85, 0.9, 0.92, 0.93, 0.94, 0.945, 0.95]
    h = hist([0.5, 0.8, 0.85, 0.88, 0.91, 0.93, 0.94, 0.95, 0.955, 0.96], va)
    d = diagnose(h)
    assert d.evidence["acc_drops"] == [3] and d.evidence["acc_drops_unstable"] == []
    assert d.diagnosis != "unstable"
    never = diagnose(hist([0.5, 0.8, 0.85, 0.88, 0.91, 0.93, 0.94, 0.95, 0.955, 0.96],
                          [0.5, 0.8, 0.65, 0.7, 0.72, 0.74, 0.75, 0.76, 0.77, 0.78]))
    assert never.diagnosis == "unstable"  # never climbed back to 0.8


def test_unstable_val_accuracy_collapse():
    h = hist([0.5, 0.8, 0.9, 0.95, 0.96, 0.97], [0.5, 0.8, 0.9, 0.6, 0.93, 0.95])
    d = diagnose(h)
    assert d.diagnosis == "unstable"
    assert d.evidence["acc_drops"] == [4]


def test_diverged_run_is_unstable():
    h = hist([0.3, 0.1], [0.3, math.nan], train_loss=[2.0, math.nan], val_loss=[2.0, math.nan])
    d = diagnose(h, status="diverged")
    assert d.diagnosis == "unstable"
    assert d.evidence["diverged_epoch"] == 2
    assert "diverged in epoch 2" in d.summary


def test_tiny_losses_do_not_make_spikes():
    # 0.01 -> 0.03 is +200% relative but far below the loss floor: noise, not a spike.
    acc = [0.9, 0.99, 0.995, 0.996, 0.996, 0.996]
    h = hist(acc, acc, train_loss=[0.3, 0.02, 0.01, 0.03, 0.012, 0.011],
             val_loss=[0.3, 0.03, 0.02, 0.021, 0.02, 0.02])
    assert diagnose(h).diagnosis == "healthy"


def test_too_short_to_read():
    d = diagnose(hist([0.5, 0.8], [0.5, 0.8]))
    assert d.diagnosis == "not_converged" and "too few" in d.summary
    # the remedy follows the reason given: two epochs show no improvement to cite
    assert "still improving" not in d.remedies[0] and "cannot show a trend" in d.remedies[0]
    assert diagnose([]).diagnosis == "not_converged"


def test_a_widening_gap_over_a_flat_validation_curve_is_overfitting_below_the_fit_gate():
    # validation at 0.76 from epoch 12 while training climbs: the gap widens 0.071 -> 0.119
    train = [0.5 + 0.02 * i for i in range(12)] + [0.831 + 0.006 * i for i in range(9)]
    val = [0.48 + 0.025 * i for i in range(12)] + [0.76] * 9
    d = diagnose(hist(train, val))
    assert train[-1] < Thresholds().low_acc  # below the "training set fit" gate
    assert d.diagnosis == "overfitting", d.summary
    assert not any("train.epochs=" in r and "more epochs" in r for r in d.remedies)


def test_overfitting_wins_over_still_improving():
    # Val still climbs at the end, but the gap is large and growing: more epochs is a non-remedy.
    h = hist([0.5, 0.8, 0.95, 1.0, 1.0, 1.0], [0.5, 0.6, 0.65, 0.68, 0.7, 0.72])
    assert diagnose(h).diagnosis == "overfitting"


def test_thresholds_change_the_verdict():
    assert diagnose(OVERFIT, thresholds=parse_thresholds(["gap=0.3"])).diagnosis != "overfitting"
    t = parse_thresholds(["low_acc=0.5"])
    assert diagnose(UNDERFIT, thresholds=t).diagnosis == "healthy"
    assert t.low_acc == 0.5 and t.gap == Thresholds().gap


@pytest.mark.parametrize(("item", "message"), [
    ("gapp=0.1", "unknown threshold 'gapp' (did you mean 'gap'?)"),
    ("gap", "is not NAME=VALUE"),
    ("gap=-1", "invalid threshold 'gap'"),
    ("low_acc=high", "invalid threshold 'low_acc'"),
])
def test_bad_thresholds(item, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        parse_thresholds([item])


def test_every_kind_has_remedies_and_markdown():
    for kind, h in [("healthy", HEALTHY), ("overfitting", OVERFIT),
                    ("underfitting", UNDERFIT), ("not_converged", RISING)]:
        d = diagnose(h)
        assert d.diagnosis == kind and kind in DIAGNOSES
        assert d.remedies and f"**Diagnosis: {kind}**" in d.markdown()
        assert set(d.to_dict()) == {"diagnosis", "summary", "evidence", "remedies",
                                    "not_remedies"}


def test_both_low_with_a_gap_is_not_trained_enough():
    # The course: "train and val accuracies are both low but there is still a gap".
    h = hist([0.3, 0.45, 0.55, 0.6, 0.62, 0.625, 0.627, 0.628],
             [0.3, 0.42, 0.49, 0.52, 0.53, 0.532, 0.533, 0.533],
             val_loss=[1.2, 1.0, 0.9, 0.86, 0.85, 0.849, 0.848, 0.848])
    d = diagnose(h)
    assert d.diagnosis == "not_converged" and "not trained enough" in d.summary
    # A near-chance run (a search trial of 3 epochs on 300 images) is not "overfitting".
    h = hist([0.125, 0.117, 0.176], [0.114, 0.120, 0.111],
             train_loss=[2.30, 2.265, 2.203], val_loss=[2.302, 2.301, 2.299])
    assert diagnose(h).diagnosis == "not_converged"


def test_low_accuracy_with_rising_val_loss_is_overfitting():
    # A hard task (train_acc never reaches low_acc) whose val loss turns up: memorising.
    h = hist([0.3, 0.45, 0.55, 0.65, 0.72, 0.78, 0.82, 0.85],
             [0.3, 0.42, 0.48, 0.50, 0.50, 0.49, 0.48, 0.47],
             val_loss=[1.5, 1.3, 1.2, 1.15, 1.2, 1.3, 1.4, 1.5])
    d = diagnose(h)
    assert d.diagnosis == "overfitting"
    assert d.evidence["val_loss_min_epoch"] == 4
    assert "above its minimum at epoch 4" in d.summary


def test_consensus_over_seeds():
    from cnnexp.diagnose.rules import consensus

    assert consensus(["healthy", "healthy"]) == "healthy"
    assert consensus(["overfitting", "healthy", "overfitting"]) == "overfitting 2/3"
    assert consensus(["healthy", "unstable"]) == "healthy 1/2"  # a tie: the first seen
    assert consensus(["", ""]) == ""


# --- diagnoses a practitioner would sign (the review issue) ----------------------------------

def with_lr(history, lrs):
    return [{**h, "lr": lr} for h, lr in zip(history, lrs, strict=True)]


def test_a_run_at_chance_is_not_learning_not_underfitting() -> None:
    # the demo's lr=8.5 trial: val_acc 0.1003 from epoch 1, loss ~ ln 10
    h = hist([0.10, 0.10, 0.10, 0.10, 0.10], [0.1003] * 5, train_loss=[2.303] * 5,
             val_loss=[2.302] * 5)
    d = diagnose(h, classes=10, eval_size=359)
    assert d.diagnosis == "not_learning"
    assert "never above chance" in d.summary and "stuck at ln C" in d.summary
    assert any("cnnexp sanity" in r for r in d.remedies)
    assert any("bigger model" in r for r in d.not_remedies)
    assert diagnose(h).diagnosis != "not_learning"  # chance unknown: no such claim


def test_the_near_chance_trial_is_not_learning_when_the_classes_are_known() -> None:
    h = hist([0.125, 0.117, 0.176], [0.114, 0.120, 0.111],
             train_loss=[2.30, 2.265, 2.203], val_loss=[2.302, 2.301, 2.299])
    assert diagnose(h, classes=10, eval_size=60).diagnosis == "not_learning"


def test_a_tiny_val_loss_drop_is_not_progress() -> None:
    # the demo's best fine trial: val_acc at 0.9972, val_loss 0.020 -> 0.011 over the window
    acc = [0.9, 0.97, 0.99, 0.995, 0.9972, 0.9972, 0.9972, 0.9972]
    h = hist(acc, acc, val_loss=[0.3, 0.1, 0.05, 0.03, 0.020, 0.016, 0.013, 0.011])
    assert diagnose(h, classes=10, eval_size=359).diagnosis == "healthy"


def test_a_gain_within_noise_is_not_progress_but_above_noise_is() -> None:
    acc = [0.5, 0.8, 0.9, 0.92, 0.93, 0.935, 0.94, 0.945]
    h = hist(acc, acc)
    assert diagnose(h, eval_size=300).diagnosis == "healthy"  # +0.01 over 2 epochs, n=300
    assert diagnose(h, eval_size=300).evidence["noise"] > 0.01
    assert diagnose(h, eval_size=100_000).diagnosis == "not_converged"  # same gain, tiny noise


def test_still_improving_when_the_schedule_has_ended_is_not_not_converged() -> None:
    ended = with_lr(RISING, [0.1, 0.09, 0.08, 0.06, 0.04, 0.02, 0.005, 0.0])
    d = diagnose(ended)
    assert d.diagnosis != "not_converged" and d.evidence["schedule_room"] is False
    room = with_lr(RISING, [0.1] * 8)
    assert diagnose(room).diagnosis == "not_converged"


def test_identical_curves_get_the_same_reading_whatever_the_run() -> None:
    # the default run and the best trial with the same curves must agree
    a = diagnose(with_lr(HEALTHY, [0.05] * 10), classes=10, eval_size=287)
    b = diagnose(with_lr(HEALTHY, [0.05] * 10), classes=10, eval_size=287)
    assert a.diagnosis == b.diagnosis == "healthy"


def test_confusion_csv_quotes_class_names_that_hold_commas_or_newlines() -> None:
    import csv
    import io

    import torch

    from cnnexp.diagnose.plots import confusion_csv

    text = confusion_csv(torch.tensor([[1, 2], [3, 4]]), ["cats, big", "a\nb"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["true\\predicted", "cats, big", "a\nb"], ["cats, big", "1", "2"],
                    ["a\nb", "3", "4"]]


def test_user_text_with_dollar_signs_is_drawn_as_written() -> None:
    """A class folder (or run name, arm label) like `$\\foo{$` is text, not broken math."""
    import io

    import torch

    from cnnexp.diagnose.plots import confusion_figure

    fig = confusion_figure(torch.tensor([[3, 1], [0, 4]]), ["$\\foo{$", "$x$"], "run $\\bar{$")
    fig.savefig(io.BytesIO(), format="png")  # raised ValueError with mathtext on
