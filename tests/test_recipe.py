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


# --- hostile or mistaken YAML (issue 16): refused fast, naming file, line and key ---

def test_alias_bomb_is_refused_before_it_expands() -> None:
    import time

    from cnnexp.recipe import YamlRefused, load_yaml_text

    levels = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 12))
    start = time.perf_counter()
    with pytest.raises(YamlRefused, match=r"each alias .* counted as a copy"):
        load_yaml_text(levels)  # 10**12 values if expanded
    assert time.perf_counter() - start < 1.0


def test_anchors_and_merge_keys_still_work() -> None:
    from cnnexp.recipe import load_yaml_text

    data = load_yaml_text("base: &b {lr: 0.1, momentum: 0.9}\n"
                          "fast: {<<: *b, lr: 0.5}\nsame: *b\n")
    assert data["fast"] == {"lr": 0.5, "momentum": 0.9} and data["same"] == data["base"]


def test_recursive_alias_is_refused() -> None:
    from cnnexp.recipe import YamlRefused, load_yaml_text

    with pytest.raises(YamlRefused, match="inside its own anchor"):
        load_yaml_text("a: &a [1, *a]\n")


def test_duplicate_arm_labels_are_refused(tmp_path: Path) -> None:
    from cnnexp.ablate.spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("baseline: digits\narms:\n  x: {opt.lr: 0.1}\n  y: {opt.lr: 0.3}\n"
                    "  x: {opt.lr: 0.2}\n")
    with pytest.raises(BadInput, match=r"spec.yaml:5: duplicate key 'x' \(first on line 3\)"):
        load_spec(str(spec))


def test_size_limit_reads_no_more_than_it_needs(tmp_path: Path) -> None:
    from cnnexp.recipe import MAX_YAML_BYTES

    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("defaults: {data: digits}\n")
        f.truncate(50 * 1024 * 1024)  # a 50 MB recipe: refused from its first bytes
    with pytest.raises(BadInput, match=f"larger than {MAX_YAML_BYTES // 1024} KiB"):
        load_recipe(str(big))


def test_recipe_file_with_equals_in_its_name_is_the_recipe(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI reads a first argument with '=' as an override; an existing file wins
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "lr=0.1.yaml").write_text("defaults: {data: digits}\nopt: {lr: 0.1}\n")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(None, ["r/lr=0.1.yaml", "train.epochs=2"])
    assert recipe.name == "lr=0.1" and recipe.opt.lr == 0.1 and recipe.train.epochs == 2


def test_experiment_name_follows_the_recipe_name_rule() -> None:
    from cnnexp.recipe import check_experiment_name

    assert check_experiment_name("my digits") == "my digits"
    for bad in ("", "   ", "x" * 600, "two\nlines"):
        with pytest.raises(BadInput, match=r"invalid --experiment .*1 to 128 printable"):
            check_experiment_name(bad)


def test_seeds_betas_and_finite_floats_are_bounded() -> None:
    top = load_recipe("digits", ["train.seed=4294967295", "data.split_seed=4294967295",
                                 "opt=adam", "opt.betas=[0, 0.999]"])
    assert top.train.seed == 2**32 - 1 and top.opt.betas == (0.0, 0.999)
    for override in ("train.seed=4294967296", "opt.betas=[0.9, 1]", "opt.lr=.inf",
                     "opt.weight_decay=nan", "aug.scale=[0.5, .inf]", "arch.stages=[]"):
        with pytest.raises(BadInput):
            load_recipe("digits", [override])


@pytest.mark.slow
def test_wheel_ships_the_recipes_and_builds_quietly(tmp_path: Path) -> None:
    """`make install`'s build: no setuptools warnings, and recipes/ inside the wheel as
    cnnexp/recipes (built from a copy, so the checkout gets no build/ folder)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("needs setuptools>=77 in this environment (--no-build-isolation)")
    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("cnnexp", "recipes"):
        shutil.copytree(root / part, src / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(root / part, src / part)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stdout + out.stderr, (out.stdout + out.stderr)[:2000]
    wheel = next((tmp_path / "dist").glob("cnnexp-*.whl"))
    shipped = {n.removeprefix("cnnexp/recipes/") for n in zipfile.ZipFile(wheel).namelist()
               if n.startswith("cnnexp/recipes/") and n.endswith(".yaml")}
    assert shipped == {p.relative_to(root / "recipes").as_posix()
                       for p in (root / "recipes").glob("*/*.yaml")}
