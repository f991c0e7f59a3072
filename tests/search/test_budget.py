"""`cnnexp search --budget`: the plan fits the budget (pure planning on given rates), bad
budgets are refused in one line, and a real digits search given a small budget ends within it
(plus about one trial's time)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cnnexp.errors import BadInput
from cnnexp.search.budget import Rates, apply, make_plan, parse_budget
from cnnexp.search.config import build_plan

pytestmark = pytest.mark.usefixtures("one_thread")

# a machine where a fashion_mnist-sized epoch costs about a minute
RATES = Rates(train=1.0e-3, evaluate=2.5e-4, n_train=54000, n_val=6000, views=2,
              probe_seconds=5.0)


def test_durations_parse_and_nonsense_is_refused() -> None:
    assert parse_budget("30m") == 1800 and parse_budget("1.5h") == 5400
    assert parse_budget("1h30m") == 5400 and parse_budget(" 90s ") == 90
    for bad in ("30", "m", "5x", "-3m", "1m30", "5s"):
        with pytest.raises(BadInput, match="--budget"):
            parse_budget(bad)


@pytest.mark.parametrize("minutes", [25, 40, 90, 240])
def test_the_plan_fits_the_budget(minutes: int) -> None:
    plan = build_plan("fashion_mnist", [])
    bp = make_plan(plan, minutes * 60, RATES, confirm=True, confirm_epochs=3, confirm_seeds=2)
    assert bp.seconds <= minutes * 60
    assert all(s.trials >= 2 for s in bp.stages) and bp.stages[0].trials >= 4
    # what was cut is said
    for s in bp.stages:
        assert (s.trials < s.requested) == any(d.startswith(f"{s.name} trials")
                                               for d in bp.dropped)
    text = "\n".join(bp.lines())
    assert f"budget {minutes * 60 / 60:.1f} min" in text and "coarse:" in text
    apply(plan, bp)
    assert [s.trials for s in plan.stages] == [s.trials for s in bp.stages]
    assert all(s.promote <= s.trials for s in plan.stages)


def test_more_budget_buys_more_trials_and_a_small_one_drops_the_confirmation() -> None:
    plan = build_plan("fashion_mnist", [])
    small = make_plan(plan, 25 * 60, RATES, confirm=True, confirm_epochs=3, confirm_seeds=2)
    large = make_plan(plan, 240 * 60, RATES, confirm=True, confirm_epochs=3, confirm_seeds=2)
    assert sum(s.trials for s in large.stages) > sum(s.trials for s in small.stages)
    assert small.confirm_seeds == 0 and any("confirming stage" in d for d in small.dropped)
    assert large.confirm_seeds == 2 and large.seconds <= 240 * 60


def test_each_stage_keeps_the_planned_time_of_the_stages_after_it() -> None:
    plan = build_plan("fashion_mnist", [])
    bp = make_plan(plan, 60 * 60, RATES, confirm=True, confirm_epochs=3, confirm_seeds=2)
    coarse, fine = bp.stages
    ends = bp.stage_ends(10_000.0)
    assert bp.confirm_seconds > 0 and coarse.seconds > 0 and fine.seconds > 0
    assert ends["fine"] == pytest.approx(10_000.0 - bp.confirm_seconds)
    assert ends["coarse"] == pytest.approx(10_000.0 - bp.confirm_seconds - fine.seconds)
    # a search that keeps to its plan meets every stage's end (start: the deadline less the plan)
    start = 10_000.0 - bp.seconds
    assert start + bp.rates.probe_seconds + coarse.seconds <= ends["coarse"]


def test_a_stage_that_runs_long_cuts_its_own_trials_not_the_next_stage(cli, workdir) -> None:
    """The budget is measured on the recipe (width 32); trials at width 160-224 cost several
    times as much per image, so the coarse stage runs long. It must cut its own trials and
    leave the fine stage its share (with one deadline for the whole search, coarse ran to the
    end and fine never started)."""
    import yaml

    recipe = yaml.safe_load(Path(_digits()).read_text(encoding="utf-8"))
    recipe["search"]["space"] = {"arch.width": {"low": 160, "high": 224},
                                 "opt.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}
    recipe["search"]["stages"] = {"coarse": {"trials": 8, "epochs": 2, "sampler": "random"},
                                  "fine": {"trials": 2, "epochs": 2, "sampler": "random"}}
    (workdir / "slow.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    budget = 40
    res = cli("search", "slow.yaml", "data.subset=300", "--no-confirm", "--budget",
              f"{budget}s")
    assert res.exit_code == 0, res.stderr
    shown = res.stdout + res.stderr
    assert "each stage keeps to its share" in shown
    assert "of coarse skipped (its share of the budget is spent" in shown
    rows = _rows(str(next((workdir / "outputs/search").glob("slow*/trials.csv"))))
    states = {(r["stage"], r["state"]) for r in rows}
    # an unstarted ticket reads skipped (printed and in trials.csv), never as a failure
    assert ("coarse", "skipped") in states and not any(s == "fail" for _, s in states), states
    assert "  skipped (budget: not started" in shown
    assert ("fine", "complete") in states or ("fine", "pruned") in states, states
    started = [r for r in rows if r["state"] != "skipped"]
    assert sum(float(r["seconds"]) for r in started) <= budget + max(
        float(r["seconds"]) for r in started)


def test_a_budget_below_the_smallest_search_is_refused() -> None:
    plan = build_plan("fashion_mnist", [])
    with pytest.raises(BadInput, match="too small for this search"):
        make_plan(plan, 5 * 60, RATES, confirm=True, confirm_epochs=3, confirm_seeds=2)


def test_a_search_given_a_small_budget_ends_within_it(cli, workdir) -> None:
    budget = 50
    began = time.time()
    res = cli("search", "data.subset=400", "search.stages.fine.epochs=6", "--budget",
              f"{budget}s", "--json")
    wall = time.time() - began
    assert res.exit_code == 0, res.stderr
    out = res.json()
    b = out["budget"]
    assert "budget 50 s: measured" in res.stderr and "planned" in res.stderr
    assert b["budget_seconds"] == budget and b["planned_seconds"] <= budget
    # the search keeps to its deadline, give or take the one trial that may run past it
    longest = max(float(r["seconds"] or 0) for r in _rows(out["csv_path"]))
    assert b["used_seconds"] <= budget + longest + 3.0, (b, longest)
    assert wall <= budget + longest + 10.0  # the CLI's own start-up and exit on top
    counted = sum(s["complete"] + s["pruned"] + s["failed"] + s["skipped"]
                  for s in out["stages"])
    assert counted == sum(v["trials"] for v in b["stages"].values() if v) or \
        len(out["stages"]) < len(b["stages"])  # a stage the deadline never let start


@pytest.mark.parametrize("option", ["--budget", "--final-budget"])
def test_bad_budget_exits_2_before_anything_is_stored(cli, workdir, option: str) -> None:
    res = cli("search", option, "soon", "--json")
    assert res.exit_code == 2 and f"{option} 'soon'" in res.stderr
    assert json.loads(res.stdout)["exit_code"] == 2
    assert not (workdir / "cnnexp-optuna.journal").exists()
    assert not (workdir / "mlflow.db").exists()


def _digits() -> str:
    from cnnexp.recipe import find

    return str(find("experiments", "digits"))


def _rows(path: str) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
