"""Narrowing and the edge check: pure functions, exact expectations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnexp.search.narrow import (
    Choice,
    Range,
    describe_change,
    edge_side,
    edge_warnings,
    fmt,
    narrow_choice,
    narrow_range,
    next_space,
)

LR = Range(1e-5, 1.0, log=True)


def test_fmt_is_short_and_drops_exponent_padding() -> None:
    assert [fmt(1e-5), fmt(0.95), fmt(9.5e-6), fmt(1.0), fmt(0.5), fmt(12)] == \
        ["1e-5", "0.95", "9.5e-6", "1", "0.5", "12"]


@pytest.mark.parametrize(("value", "side"), [
    (0.95, "upper"),      # log10 = -0.02, above -0.5 (the top 10% of 5 decades)
    (0.32, "upper"),      # -0.49: just inside the upper 10%
    (0.3, None),          # -0.52: just outside
    (1e-5, "lower"),
    (3.1e-5, "lower"),    # -4.51: inside the lower 10% (-5 .. -4.5)
    (3.2e-5, None),       # -4.49
    (1e-3, None),
])
def test_edge_side_uses_log_space(value: float, side: str | None) -> None:
    assert edge_side(value, LR, 0.1) == side


def test_edge_side_linear() -> None:
    r = Range(0.0, 0.5)
    assert (edge_side(0.04, r), edge_side(0.06, r), edge_side(0.46, r)) == ("lower", None, "upper")


def test_narrow_spans_top_values_with_margin_in_log_space() -> None:
    # top values 1e-3 .. 1e-2; margin 0.1 of 5 decades = 0.5 decade each side
    r = narrow_range(LR, [1e-3, 1e-2, 3e-3], margin=0.1)
    assert r == Range(0.000316, 0.0317, log=True)
    assert math.isclose(math.log10(0.000316), -3.5, abs_tol=0.001)


def test_narrow_never_leaves_the_old_range_without_an_edge() -> None:
    r = narrow_range(LR, [2e-5, 0.9], margin=0.1)
    assert (r.low, r.high) == (1e-5, 1.0)


def test_upper_edge_extends_one_decade_past_the_old_edge() -> None:
    r = narrow_range(LR, [0.3, 0.95], margin=0.1, side="upper", extend=1.0, max_share=1.0)
    assert r == Range(0.0948, 10.0, log=True)


def test_lower_edge_extends_below_and_keeps_the_narrowed_top() -> None:
    r = narrow_range(LR, [1.2e-5, 1e-4], margin=0.1, side="lower", extend=1.0, max_share=1.0)
    assert r == Range(1e-6, 0.000317, log=True)


def test_linear_edge_extends_half_the_width_within_the_schema_bound() -> None:
    r = narrow_range(Range(0.0, 0.5), [0.45, 0.5], margin=0.1, side="upper", bound=(0.0, 0.999),
                     max_share=1.0)
    assert r == Range(0.4, 0.75)
    capped = narrow_range(Range(0.0, 0.9), [0.85, 0.9], margin=0.1, side="upper",
                          bound=(0.0, 0.999), max_share=1.0)
    assert capped.high == 0.999


def test_linear_narrowing() -> None:
    assert narrow_range(Range(0.0, 0.5), [0.1, 0.2], margin=0.1) == Range(0.05, 0.25)


def test_integer_ranges_round_outward() -> None:
    r = narrow_range(Range(8, 64, log=True, integer=True), [16, 32], margin=0.1)
    assert r == Range(12.0, 40.0, log=True, integer=True)


def test_choices_keep_those_in_the_top_k_in_original_order() -> None:
    c = Choice(("batch", "none", "group"))
    assert narrow_choice(c, ["group", "batch", "batch"]) == Choice(("batch", "group"))
    assert narrow_choice(c, []) == c


def test_next_space_with_edge_warning_and_extension() -> None:
    space = {"opt.lr": LR, "opt.weight_decay": Range(1e-6, 1e-1, log=True),
             "reg.dropout": Range(0.0, 0.6), "arch.norm": Choice(("batch", "none"))}
    top = [{"opt.lr": 0.95, "opt.weight_decay": 1e-4, "reg.dropout": 0.3, "arch.norm": "batch"},
           {"opt.lr": 0.5, "opt.weight_decay": 1e-3, "reg.dropout": 0.2, "arch.norm": "batch"}]
    out = next_space(space, top, top[0], margin=0.1,
                     bounds={"reg.dropout": (0.0, 0.999), "opt.lr": (0.001, None)},
                     max_share=1.0)
    assert out.warnings == ["best opt.lr=0.95 is at the upper edge of [1e-5, 1]"]
    assert out.space["opt.lr"] == Range(0.158, 10.0, log=True)
    assert out.space["opt.weight_decay"] == Range(3.16e-05, 0.00317, log=True)
    assert out.space["reg.dropout"] == Range(0.14, 0.36)
    assert out.space["arch.norm"] == Choice(("batch",))
    assert out.changes["opt.lr"][:2] == ("[1e-5, 1] log", "[0.16, 10] log")
    assert out.changes["opt.lr"][2].startswith("narrowed on the other side, extended 1 decades "
                                               "past the upper edge")
    assert out.changes["opt.weight_decay"][2] == "narrowed"


def test_no_warning_when_the_edge_is_the_schemas_own_limit() -> None:
    # best dropout 0.0 on a range starting at the valid minimum: a finding, not a bad range
    space = {"reg.dropout": Range(0.0, 0.5)}
    assert edge_warnings(space, {"reg.dropout": 0.01}, bounds={"reg.dropout": (0.0, 0.999)}) == []
    assert edge_warnings(space, {"reg.dropout": 0.01}) == \
        ["best reg.dropout=0.01 is at the lower edge of [0, 0.5]"]


def test_next_space_without_completed_trials_keeps_the_ranges() -> None:
    space = {"opt.lr": LR}
    out = next_space(space, [], {})
    assert out.space == space and out.warnings == []


@given(st.lists(st.floats(-5, 0), min_size=1, max_size=8), st.floats(0.01, 0.5))
def test_narrowed_log_range_contains_every_top_value(ts: list[float], margin: float) -> None:
    values = [10 ** t for t in ts]
    r = narrow_range(LR, values, margin=margin)
    assert r.low <= min(values) * (1 + 1e-9) and r.high >= max(values) * (1 - 1e-9)
    assert LR.low <= r.low < r.high <= LR.high


# --- the words match the numbers; the budget past an edge is bounded (issue: search rigour) --

def test_extension_takes_at_most_a_quarter_of_the_next_range() -> None:
    r = narrow_range(LR, [0.3, 0.95], margin=0.1, side="upper", extend=1.0)
    lo, hi = math.log10(r.low), math.log10(r.high)
    assert r.low == 0.0948 and 0 < hi <= 0.25 * (hi - lo) + 0.01  # past the old edge (0)
    out = next_space({"opt.lr": LR}, [{"opt.lr": 0.95}, {"opt.lr": 0.3}], {"opt.lr": 0.95})
    how = out.changes["opt.lr"][2]
    assert "past the upper edge" in how and "at most 25% of the next trials" in how


def test_narrowed_only_when_narrower_and_kept_when_unchanged() -> None:
    assert describe_change(LR, Range(1e-4, 1e-2, log=True)) == "narrowed"
    assert describe_change(LR, LR) == "kept"
    assert describe_change(Range(0.0, 0.5), Range(0.0, 0.75)).startswith(
        "extended 0.25 past the upper edge")
    wider_both = describe_change(LR, Range(1e-6, 10.0, log=True))
    assert wider_both.startswith("extended 2 decades past")  # never called "narrowed"


def test_a_stage_without_signal_is_not_narrowed() -> None:
    space = {"opt.lr": LR, "arch.norm": Choice(("batch", "none"))}
    top = [{"opt.lr": 0.5, "arch.norm": "batch"}, {"opt.lr": 0.4, "arch.norm": "batch"}]
    out = next_space(space, top, top[0], signal=False)
    assert out.space == space and out.warnings == []
    assert out.changes["opt.lr"][2] == "kept (no signal to narrow around)"


def test_edge_warning_needs_the_edge_value_to_stand_out() -> None:
    space = {"opt.lr": LR}
    flat = next_space(space, [{"opt.lr": 0.95}], {"opt.lr": 0.95},
                      stands_out=lambda path, side: False)
    assert flat.warnings == [] and flat.space["opt.lr"].high <= 1.0
    assert edge_warnings(space, {"opt.lr": 0.95}, stands_out=lambda p, s: True) == \
        ["best opt.lr=0.95 is at the upper edge of [1e-5, 1]"]
