"""`cnnexp bench` reports throughput and a time breakdown that adds up; the benchmark
harness (benchmarks/) computes its statistics and warnings right."""

from __future__ import annotations

import math
import statistics

import pytest


def test_bench_json_breakdown(cli) -> None:
    res = cli("bench", "data.subset=256", "--steps", "3", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["device"] == "cpu" and out["images_per_sec"] > 0
    assert set(out["ms_per_step"]) == {"data", "forward_backward", "optimizer", "logging"}
    assert all(v >= 0 for v in out["ms_per_step"].values())
    assert sum(out["share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert out["share"]["forward_backward"] > out["share"]["logging"]


def test_bench_bad_input(cli) -> None:
    res = cli("bench", "arch=resnet7", "--json")
    assert res.exit_code == 2 and "unknown arch component" in res.stderr


# --- the benchmark harness (benchmarks/common.py): statistics and warnings, no training ------
def test_spread_and_quantiles() -> None:
    from benchmarks.common import quantile, spread

    s = spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["n"], s["median"], s["min"], s["max"], s["q1"], s["q3"]) == (5, 3, 1, 5, 2, 4)
    assert s["rel_iqr"] == pytest.approx(2 / 3) and s["rel_range"] == pytest.approx(4 / 3)
    assert quantile([1.0, 2.0], 0.25) == pytest.approx(1.25)
    assert quantile([1.0, math.inf, math.inf], 0.75) == math.inf  # never reached: infinite
    assert spread([])["n"] == 0


def test_targets() -> None:
    from benchmarks.common import meets, parse_target

    assert parse_target("<= 2%") == ("<=", 2.0) and parse_target(">= 0.95") == (">=", 0.95)
    assert parse_target("< 0.5 s") == ("<", 0.5)
    assert meets(2.0, "<= 2%") and not meets(2.01, "<= 2%") and meets(3.1, ">= 3")
    with pytest.raises(ValueError):
        parse_target("about 2")


def test_interleaved_alternates_the_order() -> None:
    from benchmarks.common import interleaved

    calls: list[str] = []
    res = interleaved({"a": lambda: calls.append("a") or 1.0,
                       "b": lambda: calls.append("b") or 2.0}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"] and res == {"a": [1.0] * 3, "b": [2.0] * 3}


def test_noise_wider_than_the_effect_is_flagged() -> None:
    from benchmarks.common import paired_ratios, summarize

    tracked = [10.4, 10.1, 11.9, 10.1, 9.0]  # ~10% spread around a 2% effect
    untracked = [10.0, 9.9, 10.1, 10.0, 10.05]
    ratios = paired_ratios(tracked, untracked)
    res = summarize("t", "extra_percent", [100 * (r - 1) for r in ratios], "<= 2%", label="x",
                    sides={"tracked": tracked, "untracked": untracked},
                    effect=abs(statistics.median(ratios) - 1))
    assert res["extra_percent"] == res["value"] and res["spread"]["n"] == 5
    assert any(w.startswith("tracked varies by") for w in res["warnings"])
    assert not any(w.startswith("untracked varies") for w in res["warnings"])
    assert any("inside the figure's interquartile range" in w for w in res["warnings"])


def test_a_clear_effect_has_no_warnings() -> None:
    from benchmarks.common import summarize

    res = summarize("d", "ratio", [12.1, 12.4, 12.0, 12.6, 12.2], ">= 3", label="x",
                    sides={"fast": [100, 101, 99, 100, 102], "slow": [8.2, 8.1, 8.3, 8.0, 8.2]},
                    effect=11.2)
    assert res["met"] and res["warnings"] == []
    few = summarize("d", "ratio", [12.1, 12.4], ">= 3", label="x")
    assert few["warnings"] == ["only 2 repeat(s): the spread is not a measurement (run 5 or "
                               "more)"]


def test_busy_machine_warnings() -> None:
    from benchmarks.common import busy_warnings

    info = {"cpu_count": 2, "load_max": 3.4, "other_cpu_cores": 1.1}
    assert busy_warnings(info)[0].startswith("machine busy: 1-min load average up to 3.40")
    # above the core count only by this benchmark's own threads/workers: not busy
    assert busy_warnings({**info, "other_cpu_cores": 0.05}) == []
    # others took half a core even with a load below the core count
    assert busy_warnings({**info, "load_max": 1.5, "other_cpu_cores": 0.6})
    # no /proc/stat (e.g. macOS): the load average alone decides
    assert busy_warnings({**info, "other_cpu_cores": None})
    assert busy_warnings({"cpu_count": 2, "load_max": 1.0, "other_cpu_cores": None}) == []


def test_load_monitor_records_the_machine() -> None:
    from benchmarks.common import LoadMonitor

    with LoadMonitor(every=0.01) as m:
        sum(range(10000))
    assert m.info["cpu_count"] >= 1 and m.info["own_cpu_cores"] >= 0
    assert set(m.info) >= {"load_before", "load_after", "load_max", "other_cpu_cores"}


def test_table_rows_skips_and_warnings() -> None:
    from benchmarks.common import skipped, summarize
    from benchmarks.run import table

    ok = summarize("data_path", "ratio", [12.0, 12.5], ">= 3", label="x")
    ok["warnings"] += ["machine busy: x"]
    text = table([ok, skipped("time_to_accuracy", "no data here", "<= 1.0")])
    lines = text.splitlines()
    assert lines[0].startswith("benchmark") and "warnings" in lines[0]
    assert "12.2" in lines[2] and "12-12.5; 12.1-12.4" in lines[2] and "met" in lines[2]
    assert lines[3].strip() == "machine busy: x"  # a second warning: its own line
    assert "skipped" in lines[4] and "no data here" in lines[4]


def test_plain_script_builds_cnnexps_small_cnn() -> None:
    """The time-to-accuracy yardstick trains the same network from the same initial weights."""
    from benchmarks.time_to_accuracy import same_model, unsupported
    from cnnexp.recipe import load_recipe

    recipe = load_recipe("fashion_mnist", ["aug.tta=false"])
    assert unsupported(recipe) == [] and same_model(recipe)
    assert unsupported(load_recipe("fashion_mnist")) == ["aug.tta=True"]
    assert unsupported(load_recipe("fashion_mnist", ["aug.cutout=8", "aug.tta=false"])) == ["aug.cutout=8"]


def test_search_efficiency_counts_compute_to_reach() -> None:
    from benchmarks.search_efficiency import Search, Trial

    staged = Search([Trial("coarse", 0, "complete", 0.70, 2, 0.2, 1.0),
                     Trial("coarse", 1, "complete", 0.80, 2, 0.2, 1.0),
                     Trial("fine", 0, "pruned", None, 2, 0.4, 2.0),  # counts what it ran
                     Trial("fine", 1, "complete", 0.86, 3, 0.4, 3.0)], wall=9.0, eval_size=6000)
    assert staged.total == pytest.approx(0.4 + 0.4 + 0.8 + 1.2)
    assert staged.reach(0.80) == (pytest.approx(0.8), 2.0)
    assert staged.reach(0.85) == (pytest.approx(2.8), 7.0)
    assert staged.reach(0.9) == (math.inf, math.inf)
    assert staged.best == 0.86
    # only a trial on the whole pool can stand beside random search's: the winner's check
    staged.trials.append(Trial("full-budget check", 0, "complete", 0.85, 3, 1.0, 4.0))
    assert staged.reach(0.85, full_pool_only=True) == (pytest.approx(5.8), 11.0)
    assert staged.reach(0.86, full_pool_only=True) == (math.inf, math.inf)


def test_search_vs_peers_counts_only_full_budget_values_within_the_budget() -> None:
    from benchmarks.search_efficiency import Search, Trial
    from benchmarks.search_vs_peers import arms, full_budget, reach

    staged = Search([Trial("coarse", 0, "complete", 0.90, 1, 0.5, 1.0),  # cheap: no value
                     Trial("fine", 0, "complete", 0.80, 3, 1.0, 3.0),
                     Trial("fine", 1, "pruned", None, 1, 1.0, 1.0),
                     Trial("fine", 2, "complete", 0.84, 3, 1.0, 3.0),
                     Trial("fine", 3, "complete", 0.88, 3, 1.0, 3.0)], wall=11.0, eval_size=3000)
    curve = full_budget(staged, budget=8.0)  # the last trial would end past the budget
    assert [round(c, 2) for c, _, _ in curve] == [0.5, 3.5, 4.5, 7.5]
    assert [b for _, _, b in curve] == [-math.inf, 0.80, 0.80, 0.84]
    assert reach(curve, 0.82) == pytest.approx(7.5) and reach(curve, 0.85) == math.inf
    # equal compute by construction: the staged search's fine stage fills what coarse leaves
    plan = arms({"pool": 4000, "val_fraction": 0.05, "n": 12, "epochs": 3, "coarse": 12}, 0)
    assert plan["staged"][2] == "coarse=12,fine=10" and plan["random"][2] == "fine=12"
    assert "search.stages.fine.sampler=tpe" in plan["tpe_hyperband"][0]
    assert "search.stages.fine.pruner=hyperband" in plan["tpe_hyperband"][0]
