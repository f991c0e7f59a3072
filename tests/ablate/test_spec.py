"""Ablation specs and arm composition (no training): shipped specs compose, modes put the
overrides in the right order, bad specs exit 2 before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnexp.ablate.plan import plan
from cnnexp.ablate.run import prepare
from cnnexp.ablate.spec import parse_spec, to_overrides
from cnnexp.errors import BadInput
from cnnexp.recipe import available, parse_override


@pytest.mark.parametrize("name", available("ablations"))
def test_shipped_specs_compose(name: str) -> None:
    _, spec, arms = prepare(name, None, [])
    assert len(arms) == len(spec.arms) + 1 and arms[0].is_reference


def test_default_spec_is_digits_leave_one_out() -> None:
    name, spec, arms = prepare(None, None, [])
    assert name == "digits_components" and spec.mode == "leave-one-out"
    base, *rest = arms
    assert base.recipe.name == "digits" and base.recipe.aug.name == "digits"
    by = {a.label: a.recipe for a in rest}
    assert by["no augmentation"].aug.name == "none"
    assert by["no weight decay"].opt.weight_decay == 0 and base.recipe.opt.weight_decay > 0
    assert by["no batchnorm"].arch.norm == "none"
    # leave-one-out: everything else stays as in the baseline
    assert by["no batchnorm"].aug == base.recipe.aug
    assert {r.train.epochs for r in by.values()} == {base.recipe.train.epochs}


def test_values_round_trip_through_override_strings() -> None:
    change = {"aug": "none", "opt": {"weight_decay": 0}, "aug.scale": [0.9, 1.1],
              "opt.nesterov": False, "data.root": "null", "arch.init": "default"}
    parsed = dict(parse_override(o) for o in to_overrides(change))
    assert parsed == {"aug": "none", "opt.weight_decay": 0, "aug.scale": [0.9, 1.1],
                      "opt.nesterov": False, "data.root": "null", "arch.init": "default"}


def test_cumulative_applies_arms_in_order() -> None:
    _, spec, arms = prepare("cifar100_course", None, [])
    assert spec.mode == "cumulative"
    labels = [a.label for a in arms]
    assert labels == ["Baseline", "with BatchNorm", "with Augmentation", "with Regularisation"]
    r = [a.recipe for a in arms]
    assert (r[0].arch.norm, r[0].aug.name, r[0].reg.name, r[0].opt.weight_decay) == \
        ("none", "none", "none", 0)
    assert (r[1].arch.norm, r[1].aug.name, r[1].reg.name) == ("batch", "none", "none")
    assert (r[2].arch.norm, r[2].aug.name, r[2].reg.name) == ("batch", "standard", "none")
    assert (r[3].arch.norm, r[3].aug.name, r[3].reg.dropout, r[3].reg.label_smoothing) == \
        ("batch", "standard", 0.5, 0.1)
    assert r[3].opt.weight_decay == pytest.approx(2.5e-3)  # reg/full's _global_
    assert all(x.arch.model == "convblock" and x.train.batch_size == 32 for x in r)


def test_later_cumulative_arm_wins_and_add_one_in_does_not_accumulate() -> None:
    raw = {"baseline": "digits", "start": {"aug": "none"},
           "arms": {"lr up": {"opt.lr": 0.1}, "lr up more": {"opt.lr": 0.2},
                    "flip": {"aug.flip": True}}}
    cum = plan(parse_spec({**raw, "mode": "cumulative"}))
    assert [a.recipe.opt.lr for a in cum] == [0.05, 0.1, 0.2, 0.2]
    assert cum[3].recipe.aug.flip and cum[3].recipe.aug.name == "none"
    add = plan(parse_spec({**raw, "mode": "add-one-in"}))
    assert [a.recipe.opt.lr for a in add] == [0.05, 0.1, 0.2, 0.05]
    assert add[0].label == "start" and not add[1].recipe.aug.flip


def test_command_line_overrides_reach_every_arm_but_arms_win() -> None:
    _, _, arms = prepare(None, None, ["train.epochs=2", "opt.weight_decay=0.01"])
    assert {a.recipe.train.epochs for a in arms} == {2}
    wd = {a.label: a.recipe.opt.weight_decay for a in arms}
    assert wd["baseline"] == 0.01 and wd["no weight decay"] == 0


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("arms: {}\n", "at least one arm"),
    ("arms: {x: {opt.weight_dekay: 0}}\n", "did you mean 'opt.weight_decay'"),
    ("arms: {x: {aug: nonee}}\n", "did you mean 'none'"),
    ("arms: {x: {opt.lr: -1}}\n", "opt.lr"),
    ("seeds: 0\narms: {x: {aug: none}}\n", "seeds"),
    ("armz: {x: {aug: none}}\n", "did you mean 'arms'"),
    ("mode: sideways\narms: {x: {aug: none}}\n", "mode"),
    ("metric: val_accc\narms: {x: {aug: none}}\n", "did you mean 'val_acc'"),
    ("arms: {x: {train.epochs: 50}}\n", "same budget"),
    ("arms: {baseline: {aug: none}}\n", "reference row"),
    ("arms: {x: {}}\n", "changes nothing"),
])
def test_bad_specs_exit_2_before_anything_runs(cli, workdir: Path, text: str, message: str) -> None:
    path = workdir / "bad.yaml"
    path.write_text(text)
    res = cli("ablate", "--spec", str(path), "--json")
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert json.loads(res.stdout) == {"error": res.stderr.removeprefix("error: ").strip(),
                                      "exit_code": 2}
    assert not (workdir / "outputs").exists() and not (workdir / "mlflow.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--spec", "digits_componets"], "did you mean 'digits_components'"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--mode", "leave-one-outt"], "did you mean 'leave-one-out'"),
    (["digitz"], "did you mean 'digits'"),
    (["opt.momentun=0.5"], "did you mean 'opt.momentum'"),
])
def test_bad_command_line_exits_2(cli, workdir: Path, args: list[str], message: str) -> None:
    res = cli("ablate", *args)
    assert res.exit_code == 2 and message in res.stderr, res.stderr
    assert not (workdir / "mlflow.db").exists()


def test_parse_spec_rejects_unknown_retune_key() -> None:
    with pytest.raises(BadInput, match=r"retune\.trails"):
        parse_spec({"arms": {"x": {"aug": "none"}}, "retune": {"trails": 3}})


def test_dry_run_lists_arms_as_json(cli) -> None:
    res = cli("ablate", "--spec", "cifar100_course", "--dry-run", "--json")
    assert res.exit_code == 0
    out = res.json()
    assert out["arms"][0]["arm"] == "Baseline"
    assert out["arms"][-1]["overrides"][-1] == "reg=full"
