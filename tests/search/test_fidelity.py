"""Does the cheap stage predict the expensive one? The rule on plain numbers (a case where it
must warn, one where it must not, too few pairs, pairs within noise) and a real digits search
whose fine stage re-trains the coarse stage's best configurations."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cnnexp.search.fidelity import Pair, check, interval, spearman
from cnnexp.tracking import tags as T

pytestmark = pytest.mark.usefixtures("one_thread")


def pairs(cheap: list[float], dear: list[float | None]) -> list[Pair]:
    return [Pair(i, 10 + i, c, d) for i, (c, d) in enumerate(zip(cheap, dear, strict=True))]


def run(ps: list[Pair], maximize: bool = True):
    return check(ps, cheap_stage="coarse", stage="fine", maximize=maximize, eval_size=3000,
                 accuracy=True)


def test_spearman_matches_scipy_with_ties() -> None:
    xs, ys = [0.8, 0.7, 0.7, 0.6, 0.5], [0.88, 0.86, 0.87, 0.80, 0.81]
    assert spearman(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic, rel=1e-12)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    lo, hi = interval(0.8, 6)
    assert -1 < lo < 0.8 < hi < 1 and interval(0.8, 3) == (-1.0, 1.0)


def test_a_ranking_that_carries_gives_no_warning() -> None:
    f = run(pairs([0.80, 0.76, 0.71, 0.65], [0.89, 0.87, 0.84, 0.78]))
    assert f.verdict == "carries" and f.rho == pytest.approx(1.0) and not f.warning
    assert "carried to the fine stage" in f.text and "4 configurations" in f.text


def test_a_reversed_ranking_warns_in_plain_words() -> None:
    f = run(pairs([0.80, 0.76, 0.71, 0.65], [0.70, 0.78, 0.84, 0.88]))
    assert f.verdict == "does not carry" and f.rho == pytest.approx(-1.0)
    assert f.warning.startswith("coarse rankings did not carry to the fine stage")
    assert "raise search.stages.coarse.epochs or subset" in f.warning
    # a configuration pruned at the expensive budget ranks last there: the best coarse one
    # failing counts against the cheap stage
    f = run(pairs([0.80, 0.76, 0.71], [None, 0.85, 0.84]))
    assert f.verdict == "does not carry"
    # a loss: lower is better on both sides
    f = run(pairs([0.30, 0.40, 0.50, 0.60], [0.20, 0.25, 0.31, 0.40]), maximize=False)
    assert f.verdict == "carries"


def test_too_few_pairs_and_pairs_within_noise_are_named_not_judged() -> None:
    f = run(pairs([0.8, 0.7], [0.9, 0.85]))
    assert f.verdict == "too few" and "promote" in f.text and not f.warning
    f = run(pairs([0.80, 0.76, 0.71], [0.880, 0.882, 0.884]))  # n=3000: SE ~0.006
    assert f.verdict == "within noise" and not f.warning and math.isnan(f.rho)


def test_fine_stage_retrains_the_best_coarse_configurations(cli, mlflow_client) -> None:
    res = cli("search", "data.subset=300", "search.stages.coarse.epochs=1",
              "search.stages.fine.epochs=2", "search.stages.fine.promote=3",
              "search.stages.fine.pruner=none", "--trials", "coarse=5,fine=4", "--no-confirm",
              "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    coarse, fine = out["stages"]
    fid = fine["fidelity"]
    assert coarse.get("fidelity") is None
    # the fine stage's first three trials re-train the coarse stage's three best, in order
    assert [p["cheap_trial"] for p in fid["pairs"]] == [t["trial"] for t in coarse["top"][:3]]
    assert [p["cheap"] for p in fid["pairs"]] == [t["value"] for t in coarse["top"][:3]]
    assert fid["verdict"] in ("carries", "does not carry", "within noise")
    assert (fid["verdict"] == "does not carry") == bool(fid["warning"])
    if fid["warning"]:
        assert fid["warning"] in res.stderr
    exp = mlflow_client.get_experiment_by_name(out["study"])
    runs = mlflow_client.search_runs([exp.experiment_id], max_results=100)
    (stage,) = [r for r in runs if r.data.tags.get(T.KIND) == "stage"
                and r.data.tags.get(T.STAGE) == "fine"]
    assert stage.data.tags[T.FIDELITY] == fid["verdict"]
    assert "Fidelity: coarse -> fine" in stage.data.tags[T.NOTE]
    promoted = [r for r in runs if r.data.tags.get(T.STAGE) == "fine"
                and r.data.tags.get(T.KIND) == "trial" and "(=coarse-" in r.info.run_name]
    assert len(promoted) == 3


def test_a_trial_that_trained_every_epoch_is_never_pruned() -> None:
    """Optuna's Hyperband pruner can prune at its top rung, after the last epoch: the compute
    is spent and a full-budget value would be thrown away."""
    import optuna

    from cnnexp.search.trial import Reporter

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return True

    study = optuna.create_study(direction="maximize", pruner=Always())
    trial = study.ask()
    reporter = Reporter(trial, "val_acc", epochs=3)
    reporter.on_epoch_end(None, {"val_acc": 0.8, "epoch": 3})  # the last epoch: kept
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 2"):
        Reporter(study.ask(), "val_acc", epochs=3).on_epoch_end(None, {"val_acc": 0.5,
                                                                       "epoch": 2})
