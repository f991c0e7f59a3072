"""Property-based: no override or recipe file makes recipe loading fail with anything but a
one-line BadInput (which the CLI turns into exit code 2)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe, valid_keys

KEYS = [*valid_keys(), "arch", "aug", "reg", "opt", "data", "nope", "opt.lr.x", "+opt.lr"]
SCALARS = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(repr),
    st.sampled_from(["true", "null", "[]", "{}", "[1, 2]", "[0.9, 1.1]", "'x'", "resnet20",
                     "none", "batch", "-1", "1e309", "{a: 1}", ": :", "[", "!!python/none"]),
    st.text(max_size=12),
)
OVERRIDE = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), SCALARS),
    st.text(max_size=30),
)


def _loads_or_bad_input(ref: str | None, overrides: list[str]) -> None:
    try:
        load_recipe(ref, overrides)
    except BadInput as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=300, deadline=None)
@given(st.lists(OVERRIDE, max_size=4))
def test_overrides_never_crash(overrides: list[str]) -> None:
    _loads_or_bad_input("digits", overrides)


YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**5), st.floats(allow_nan=False),
              st.sampled_from(["digits", "resnet20", "sgd", "none", "cosine", "x"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(
                                ["data", "arch", "aug", "reg", "opt", "train", "defaults", "lr",
                                 "epochs", "name", "_global_", "model", "norm"]),
                                st.integers(0, 2), st.booleans()), inner,  # `1:`, `yes:` keys
                                max_size=4)),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(YAML_VALUES, st.text(max_size=60)))
def test_recipe_files_never_crash(tmp_path: Path, doc: object) -> None:
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    _loads_or_bad_input(str(path), [])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(defaults=st.dictionaries(st.one_of(st.integers(0, 9), st.sampled_from(["data", "opt", "x"])),
                                st.sampled_from(["digits", "sgd", "x"]), max_size=3),
       global_=st.dictionaries(st.one_of(st.integers(0, 9), st.sampled_from(
           ["opt.lr", "opt..lr", "defaults.arch", "opt lr"])), st.integers(0, 3), max_size=3))
def test_component_globals_and_defaults_never_crash(tmp_path: Path, defaults: dict,
                                                    global_: dict) -> None:
    """A component's `_global_` and an experiment's `defaults` with any keys: BadInput or a
    recipe, never a TypeError (`defaults: {1: digits}`, `_global_: {1: 2}`)."""
    import yaml

    (tmp_path / "recipes" / "reg").mkdir(parents=True, exist_ok=True)
    (tmp_path / "recipes" / "reg" / "fz.yaml").write_text(yaml.safe_dump({"_global_": global_}))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"defaults": {**defaults, "reg": "fz"}}))
    cwd = Path.cwd()
    os.chdir(tmp_path)  # ./recipes is searched before the built-in components
    try:
        _loads_or_bad_input(str(exp), [])
    finally:
        os.chdir(cwd)
