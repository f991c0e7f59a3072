"""Recipe composition, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnexp.errors import BadInput
from cnnexp.recipe import available, compose, load_recipe, parse_override, to_yaml


@pytest.mark.parametrize("name", available("experiments"))
def test_every_shipped_experiment_composes(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name
    assert set(recipe.defaults) == {"data", "arch", "aug", "reg", "opt"}


@pytest.mark.parametrize("group", ["data", "arch", "aug", "reg", "opt"])
def test_every_component_composes_into_the_default(group: str) -> None:
    for name in available(group):
        recipe = load_recipe("digits", [f"{group}={name}"])
        assert getattr(recipe, group).name == name


def test_defaults_and_global_overlay() -> None:
    r = load_recipe()
    assert r.name == "digits" and r.arch.model == "small_cnn"
    assert r.opt.weight_decay == pytest.approx(5e-4)  # set by reg/l2.yaml's _global_
    full = load_recipe("digits", ["reg=full"])
    assert full.opt.weight_decay == pytest.approx(2.5e-3) and full.reg.dropout == 0.5


def test_overrides_swap_set_and_parse_yaml_scalars() -> None:
    r = load_recipe("digits", ["arch=lenet5", "opt.lr=0.2", "aug.scale=[0.9, 1.1]",
                               "+reg.label_smoothing=0.1", "train.epochs=3"])
    assert r.arch.model == "lenet5" and r.opt.lr == 0.2 and r.aug.scale == (0.9, 1.1)
    assert r.reg.label_smoothing == 0.1 and r.train.epochs == 3
    assert parse_override("opt.nesterov=false") == ("opt.nesterov", False)


def test_cli_override_beats_component_global() -> None:
    assert load_recipe("digits", ["opt.weight_decay=0"]).opt.weight_decay == 0


def test_yaml_round_trip_trains_the_same_recipe(tmp_path: Path) -> None:
    r = load_recipe("shapes", ["opt.lr=0.01"])
    path = tmp_path / "exp.yaml"
    path.write_text(to_yaml(r))
    again = load_recipe(str(path))
    assert again.model_dump(exclude={"name"}) == r.model_dump(exclude={"name"})


def test_local_recipes_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "recipes" / "experiments").mkdir(parents=True)
    (tmp_path / "recipes" / "experiments" / "mine.yaml").write_text(
        "defaults: {data: digits, arch: lenet5, aug: none, reg: none, opt: adam}\n")
    monkeypatch.chdir(tmp_path)
    assert load_recipe("mine").arch.model == "lenet5"
    assert "mine" in available("experiments")


@pytest.mark.parametrize(("overrides", "message"), [
    (["opt.lrr=0.1"], "unknown key 'opt.lrr' (did you mean 'opt.lr'?)"),
    (["arch=resnet21"], "unknown arch component 'resnet21' (did you mean"),
    (["opt.lr=fast"], "invalid value for 'opt.lr'"),
    (["opt.lr=-1"], "invalid value for 'opt.lr': Input should be greater than 0"),
    (["train.batch_size=0"], "invalid value for 'train.batch_size'"),
    (["arch.norm=batchnorm"], "invalid value for 'arch.norm'"),
    (["opt.lr"], "must look like key=value"),
    (["opt.lr.x=1"], "'opt.lr' is not a section"),
    (["aug.scale=[1.2, 0.8]"], "aug.scale must be [low, high]"),
])
def test_bad_overrides_name_the_problem(overrides: list[str], message: str) -> None:
    with pytest.raises(BadInput) as exc:
        load_recipe("digits", overrides)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_experiment_suggests_closest() -> None:
    with pytest.raises(BadInput, match="unknown experiment recipe 'digit' \\(did you mean 'digits'"):
        compose("digit")


def test_path_traversal_in_names_is_refused() -> None:
    with pytest.raises(BadInput, match="invalid arch name"):
        load_recipe("digits", ["arch=..secret"])


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {data: digits\ntrain: [1, 2\n")
    with pytest.raises(BadInput, match=r"malformed YAML in .*bad.yaml:\d+"):
        load_recipe(str(bad))


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="recipe file not found"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_recipe_cannot_execute_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(BadInput, match="malformed YAML"):
        load_recipe(str(evil))
