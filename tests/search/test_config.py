"""The search section's checks: bad input exits 2 with one line and the closest valid choice,
before any study, trial or MLflow run exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnexp.errors import BadInput
from cnnexp.search.config import build_plan, flatten_space, parse_trials
from cnnexp.search.narrow import Choice, Range


def test_default_recipe_plan() -> None:
    plan = build_plan("digits", [])
    assert [s.name for s in plan.stages] == ["coarse", "fine"]
    assert plan.space["opt.lr"] == Range(1e-4, 1.0, log=True)
    assert plan.space["arch.norm"] == Choice(("batch", "none"))
    assert plan.direction == "maximize"
    assert plan.bounds["reg.dropout"][0] == 0.0 and plan.bounds["reg.dropout"][1] < 1.0


def test_overrides_reach_the_space_and_stages_and_null_removes() -> None:
    plan = build_plan("digits", ["search.space.opt.lr.low=1.0e-3", "search.space.arch.norm=null",
                                 "search.stages.coarse.epochs=1", "search.metric=val_loss"],
                      trials="coarse=3")
    assert plan.space["opt.lr"] == Range(1e-3, 1.0, log=True)
    assert "arch.norm" not in plan.space
    assert (plan.stages[0].trials, plan.stages[0].epochs, plan.stages[1].trials) == (3, 1, 6)
    assert plan.direction == "minimize"


def test_fingerprint_ignores_trial_counts_but_not_the_space() -> None:
    a = build_plan("digits", []).fingerprint
    assert build_plan("digits", [], trials="2").fingerprint == a
    assert build_plan("digits", ["search.space.opt.lr.high=0.5"]).fingerprint != a


def test_flatten_merges_nested_overrides_field_by_field() -> None:
    raw = {"opt.lr": {"low": 1e-5, "high": 1.0, "log": True}, "opt": {"lr": {"low": 1e-3}},
           "reg": {"dropout": None}}
    assert flatten_space(raw) == {"opt.lr": {"low": 1e-3, "high": 1.0, "log": True}}


def test_parse_trials() -> None:
    assert parse_trials("8", ["coarse", "fine"]) == {"coarse": 8, "fine": 8}
    assert parse_trials("coarse=8,fine=4", ["coarse", "fine"]) == {"coarse": 8, "fine": 4}
    with pytest.raises(BadInput, match="did you mean 'fine'"):
        parse_trials("fien=2", ["coarse", "fine"])


BAD = [
    (["search.space.opt.lr.low=2.0"], "inverted range, low=2 > high=1"),
    (["search.space.opt.lr.low=1.0"], "empty range"),
    (["search.space.opt.lr.low=0"], "log: true needs low > 0"),
    (["search.space.opt.lr.low=1e-4"], "YAML reads it as text: write 1.0e-4"),
    (["search.space.opt.weightdecay.low=0.1"], "did you mean 'opt.weight_decay'"),
    (["search.space.reg.dropout.high=1.5"], "search.space.reg.dropout: value 1.5 is not valid"),
    (["search.space.aug.flip={low: 0, high: 1}"], "aug.flip is not numeric"),
    (["search.space.opt.lr.lg=true"], "did you mean 'log'"),
    (["search.stages.coarse.sampler=randm"], "unknown sampler 'randm' (did you mean 'random'"),
    (["search.stages.fine.pruner=medain"], "unknown pruner 'medain' (did you mean 'median'"),
    (["search.metric=val_accuracy"], "did you mean 'val_acc'"),
    (["search.space.train.epochs={low: 1, high: 5}"], "train.epochs is set by each stage"),
    (["--stages", "coarse,fien"], "unknown stage 'fien' (did you mean 'fine'"),
    (["--trials", "coarse=0"], "needs a positive whole number"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--devices", "gpu7"], "unknown device 'gpu7'"),
    (["--study", "a/b"], "no '/'"),
    # issue 16: limits and odd numbers are one line, before any work
    (["--trials", "100000000000"], "positive whole number up to 10000"),
    (["--trials", "coarse=²,fine=1"], "positive whole number"),
    (["--workers", "100000"], "--workers must be at most 256"),
    (["--confirm-seeds", "0"], "--confirm-seeds must be a whole number from 1 to 100 or 'auto'"),
    (["--no-confirm", "--test"], "needs the confirming stage"),
    (["search.seed=99999999999"], "invalid value for 'seed'"),
    (["--out", "/dev/null/x"], "/dev/null is a file, not a folder"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_before_anything_is_stored(cli, workdir: Path, args: list[str],
                                                     message: str) -> None:
    res = cli("search", *args)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert res.stdout == ""
    assert not (workdir / "cnnexp-optuna.journal").exists()
    assert not (workdir / "mlflow.db").exists()


def test_recipe_without_search_section(cli, workdir: Path) -> None:
    res = cli("search", "cifar10_resnet20")
    assert res.exit_code == 2 and "has no search section" in res.stderr


def test_resume_of_a_missing_study_names_the_existing_ones(cli, workdir: Path) -> None:
    import optuna

    from cnnexp.search.storage import open_storage

    optuna.create_study(storage=open_storage("cnnexp-optuna.journal"), study_name="digits-aaaa")
    res = cli("search", "--resume", "--study", "digits-aaab")
    assert res.exit_code == 2
    assert "no study 'digits-aaab'" in res.stderr and "did you mean 'digits-aaaa'" in res.stderr


def test_out_naming_an_existing_file_fails_before_the_search(cli, workdir: Path) -> None:
    precious = workdir / "precious.txt"
    precious.write_text("keep me")
    res = cli("search", "--out", "precious.txt", "--json")
    assert res.exit_code == 2 and "precious.txt is a file, not a folder" in res.stderr
    assert precious.read_text() == "keep me" and not (workdir / "mlflow.db").exists()


def test_largest_seed_works_with_every_sampler(cli, workdir: Path) -> None:
    for sampler in ("tpe", "qmc", "random"):
        res = cli("search", "data.subset=100", "search.seed=4294967295",
                  f"search.stages.coarse.sampler={sampler}", "search.stages.coarse.epochs=1",
                  "--stages", "coarse", "--trials", "1", "--no-confirm", "--no-track",
                  "--json", "--study", f"seed-{sampler}")
        assert res.exit_code == 0, res.stderr
        assert res.json()["stages"][0]["complete"] == 1


def test_tpe_start_up_trials_draw_different_configurations(cli, workdir: Path) -> None:
    """The sampler is made afresh for each trial: seeded per worker, TPE's random start-up
    trials all drew the same configuration."""
    res = cli("search", "data.subset=60", "search.stages.coarse.sampler=tpe",
              "search.stages.coarse.epochs=1", "--stages", "coarse", "--trials", "4",
              "--no-confirm", "--no-track", "--json", "--study", "tpe-draws")
    assert res.exit_code == 0, res.stderr
    import csv

    with open(res.json()["csv_path"], newline="") as fh:
        lrs = {row["params.opt.lr"] for row in csv.DictReader(fh)}
    assert len(lrs) == 4


def test_study_names_long_or_derived_from_odd_recipe_names(cli, workdir: Path) -> None:
    res = cli("search", "--study", "s" * 300, "--json")
    assert res.exit_code == 2 and "at most 120" in res.stderr
    assert not (workdir / "cnnexp-optuna.journal").exists()
    from cnnexp.search.run import study_stem

    assert study_stem("my recipe") == "my-recipe" and study_stem("../x y") == "x-y"
    assert study_stem("///") == "search"


def test_ablate_out_naming_a_file_fails_before_any_training(cli, workdir: Path) -> None:
    (workdir / "taken").write_text("keep me")
    res = cli("ablate", "train.epochs=1", "--seeds", "1", "--out", "taken/sub", "--json")
    assert res.exit_code == 2 and "is a file, not a folder" in res.stderr
    assert (workdir / "taken").read_text() == "keep me"
    assert not (workdir / "mlflow.db").exists()
