"""Ablation statistics: known inputs -> known mean/std/p-value/verdict."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cnnexp.ablate.stats import SeedResult, mean_std, summarize, verdict, welch_p


def _seeds(values: list[float], train: float = 1.0, status: str = "completed") -> list[SeedResult]:
    return [SeedResult(value=v, train_acc=train, val_acc=v, status=status, params=10,
                       seconds=2.0) for v in values]


def test_mean_and_sample_std() -> None:
    mean, std = mean_std([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92)
    assert std == pytest.approx(0.02)  # sample std (n - 1)
    one_mean, one_std = mean_std([0.5])
    assert one_mean == 0.5 and math.isnan(one_std)
    assert all(math.isnan(x) for x in mean_std([]))


def test_welch_p_matches_the_textbook_formula() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.5]
    # Welch: t = (ma - mb) / sqrt(va/na + vb/nb), df by Welch–Satterthwaite
    va, vb = 1.0, (sum((x - 19 / 6) ** 2 for x in b) / 2)
    se2 = va / 3 + vb / 3
    t = (2.0 - 19 / 6) / math.sqrt(se2)
    df = se2**2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)
    expected = 2 * stats.t.sf(abs(t), df)
    assert welch_p(a, b) == pytest.approx(expected, rel=1e-9)
    assert welch_p(a, b) == pytest.approx(0.2803, abs=1e-4)


def test_welch_p_edge_cases() -> None:
    assert math.isnan(welch_p([1.0], [1.0, 2.0]))  # no test with one seed
    assert welch_p([0.5, 0.5], [0.5, 0.5]) == 1.0  # identical constants
    assert welch_p([0.5, 0.5], [0.7, 0.7]) == 0.0  # different constants


@pytest.mark.parametrize(("delta", "p", "higher", "expected"), [
    (0.02, 0.01, True, "helps"),
    (-0.02, 0.01, True, "hurts"),
    (0.02, 0.20, True, "within noise"),
    (-0.1, 0.01, False, "helps"),  # lower loss is better
    (0.1, 0.049, False, "hurts"),
    (0.02, math.nan, True, "n/a"),
])
def test_verdict_rule(delta: float, p: float, higher: bool, expected: str) -> None:
    assert verdict(delta, p, higher, alpha=0.05) == expected


def test_summarize_leave_one_out_rows() -> None:
    rows = summarize([("baseline", _seeds([0.95, 0.96, 0.97], train=0.99)),
                      ("no aug", _seeds([0.90, 0.91, 0.92], train=1.0)),
                      ("no wd", _seeds([0.955, 0.965, 0.96], train=0.99))])
    base, no_aug, no_wd = rows
    assert [r.arm for r in rows] == ["baseline", "no aug", "no wd"]
    assert base.verdict == "reference" and math.isnan(base.delta)
    assert no_aug.delta == pytest.approx(-0.05)
    assert no_aug.p_value < 0.01 and no_aug.verdict == "hurts"
    assert no_aug.train_val_gap == pytest.approx(0.09) and base.train_val_gap == pytest.approx(0.03)
    assert no_aug.gap_change == pytest.approx(0.06)  # overfitting increases, as data
    assert no_wd.verdict == "within noise" and no_wd.compared_to == "baseline"
    assert no_aug.n == 3 and no_aug.std == pytest.approx(0.01) and no_aug.params == 10


def test_summarize_cumulative_compares_with_previous_row() -> None:
    rows = summarize([("start", _seeds([0.50, 0.52])), ("+bn", _seeds([0.60, 0.62])),
                      ("+aug", _seeds([0.61, 0.63]))], cumulative=True)
    assert rows[2].compared_to == "+bn"
    assert rows[2].delta == pytest.approx(0.01)
    assert rows[2].delta_baseline == pytest.approx(0.11)
    assert rows[1].verdict == "helps" and rows[2].verdict == "within noise"


def test_diverged_arm_is_shown_not_dropped() -> None:
    bad = [*_seeds([0.9]), *_seeds([math.nan], status="diverged")]
    rows = summarize([("baseline", _seeds([0.9, 0.91])), ("huge lr", bad),
                      ("all nan", _seeds([math.nan, math.nan], status="diverged"))])
    assert rows[1].verdict == "diverged" and rows[1].diverged == 1 and rows[1].n == 1
    assert rows[1].mean == pytest.approx(0.9)
    assert rows[2].verdict == "diverged" and rows[2].n == 0 and math.isnan(rows[2].mean)


def test_single_seed_gives_no_verdict() -> None:
    rows = summarize([("baseline", _seeds([0.9])), ("x", _seeds([0.8]))])
    assert rows[1].verdict == "n/a" and math.isnan(rows[1].p_value)
    assert rows[1].delta == pytest.approx(-0.1)
