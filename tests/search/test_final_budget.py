"""`search.final_budget` / `--final-budget`: best.yaml trains as many epochs as fit the final
run's time, measured on the tuned configuration (the confirming stage's runs, else a probe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnnexp.search.final_budget import FINAL_OVERHEAD, epoch_seconds_of, epochs_for, plan_final

pytestmark = pytest.mark.usefixtures("one_thread")

def _yaml(path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


TINY = ["data.subset=200", "search.stages.coarse.epochs=1", "search.stages.fine.epochs=1",
        "train.epochs=2", "search.confirm.seeds=2"]


def test_epochs_fill_the_budget_after_the_fixed_allowance() -> None:
    assert epochs_for(20 * 60, 40.0) == int((1200 - FINAL_OVERHEAD) // 40)  # 29
    assert epochs_for(20 * 60, 40.0) * 40 + FINAL_OVERHEAD <= 1200
    assert (epochs_for(20 * 60, 40.0) + 1) * 40 + FINAL_OVERHEAD > 1200
    assert epochs_for(60, 500.0) == 1  # one epoch even when it overruns (and the plan says so)
    with pytest.raises(ValueError):
        epochs_for(60, 0.0)
    assert epoch_seconds_of([(80.0, 2), (90.0, 2), (5.0, 0)]) == pytest.approx(42.5)
    assert epoch_seconds_of([]) is None


def test_the_confirming_runs_measure_the_epoch_else_a_probe_does() -> None:
    probed: list[int] = []

    def probe() -> float:
        probed.append(1)
        return 10.0

    measured = plan_final(600, {"best": {"epoch_seconds": 57.0}}, probe)
    assert measured.epochs == epochs_for(600, 57.0) and "confirming stage" in measured.source
    assert not probed
    fallback = plan_final(600, None, probe)
    assert probed and fallback.epoch_seconds == 10.0 and "probe" in fallback.source
    assert fallback.epochs == epochs_for(600, 10.0)
    slow = plan_final(60, {"best": {"epoch_seconds": 500.0}}, probe)
    assert slow.epochs == 1 and "do not fit" in slow.line()


def test_best_yaml_trains_the_epochs_the_confirming_runs_say_fit(cli, workdir) -> None:
    res = cli("search", *TINY, "--trials", "coarse=2,fine=1", "--no-track",
              "--final-budget", "45s", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    final, confirmed = out["final"], out["confirm"]
    per_epoch = confirmed["best"]["epoch_seconds"]
    assert per_epoch > 0 and final["epoch_seconds"] == pytest.approx(per_epoch, abs=0.01)
    assert "confirming stage" in final["source"]
    assert final["epochs"] == epochs_for(45, per_epoch)
    best = _yaml(out["best_recipe_path"])
    assert best["train"]["epochs"] == final["epochs"]
    assert "final budget of 0.8 min" in best["description"]


def test_without_confirmation_a_probe_measures_the_tuned_configuration(cli, workdir) -> None:
    res = cli("search", *TINY, "--trials", "coarse=2,fine=1", "--no-track", "--no-confirm",
              "search.final_budget=2m", "--study", "probed")
    assert res.exit_code == 0, res.stderr
    best = _yaml(workdir / "outputs/search/probed/best.yaml")
    epochs = best["train"]["epochs"]
    assert epochs > 2 and "final budget of 2.0 min" in best["description"]
    assert f"final budget: {epochs} epoch(s) fit in 2.0 min" in res.stderr
    assert "a short probe of the tuned configuration" in res.stderr
    assert f"best.yaml trains {epochs} epoch(s)" in res.stdout
    # without a final budget best.yaml keeps the recipe's own epochs
    plain = cli("search", *TINY, "--trials", "coarse=2,fine=1", "--no-track", "--no-confirm",
                "--study", "plain", "--json")
    assert plain.json()["final"] is None
    assert _yaml(plain.json()["best_recipe_path"])["train"]["epochs"] == 2
