"""Compose a recipe: experiment defaults + component files + experiment fields + overrides,
then validate it. Every failure is a BadInput with a one-line, did-you-mean message."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cnnexp.errors import BadInput, closest, did_you_mean
from cnnexp.schema import GROUPS, Recipe

DEFAULT_EXPERIMENT = "digits"
RECIPE_FOLDERS = (*GROUPS, "experiments", "ablations")  # the folders under recipes/
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def builtin_root() -> Path:
    """Built-in recipes: inside the installed package, or the checkout's top-level recipes/."""
    here = Path(__file__).resolve().parent
    packaged = here / "recipes"
    return packaged if packaged.is_dir() else here.parent / "recipes"


def search_roots() -> list[Path]:
    """Lookup order for a name: ./recipes of the working directory, then the built-in ones."""
    roots = [Path.cwd() / "recipes", builtin_root()]
    return [r for i, r in enumerate(roots) if r.is_dir() and r.resolve() not in
            [p.resolve() for p in roots[:i]]]


def available(kind: str) -> list[str]:
    names = {p.stem for root in search_roots() for p in (root / kind).glob("*.yaml")}
    return sorted(names)


def _is_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


def find(kind: str, ref: str) -> Path:
    """A path given, else recipes/<kind>/<ref>.yaml from the lookup roots."""
    if _is_path(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise BadInput(f"recipe file not found: {ref}")
        return path
    if not _NAME_RE.match(ref) or ".." in ref:
        raise BadInput(f"invalid {kind} name '{ref}': use letters, digits, '_', '-', '.'")
    for root in search_roots():
        path = root / kind / f"{ref}.yaml"
        if path.is_file():
            return path
    label = "experiment recipe" if kind == "experiments" else f"{kind} component"
    raise BadInput(f"unknown {label} '{ref}'{did_you_mean(ref, available(kind))}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BadInput(f"malformed YAML in {where}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed YAML in {path}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`group=name`, `a.b=value` or `+a.b=value` -> (path, YAML-parsed value)."""
    if "=" not in text:
        raise BadInput(f"override '{text}' must look like key=value (e.g. opt.lr=0.05 or arch=lenet5)")
    key, _, raw = text.partition("=")
    key = key.strip().lstrip("+")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise BadInput(f"override '{text}': '{key}' is not a dotted key like opt.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise BadInput(f"cannot set '{path}': '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_component(group: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(name, str):
        raise BadInput(f"defaults.{group} must be a component name, got {name!r}")
    body = read_yaml(find(group, name))
    also = body.pop("_global_", {}) or {}
    if not isinstance(also, dict):
        raise BadInput(f"{group}/{name}.yaml: _global_ must map dotted keys to values")
    body["name"] = name
    return body, also


def compose(ref: str | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw composed recipe tree (not yet validated)."""
    ref = ref or DEFAULT_EXPERIMENT
    path = find("experiments", ref)
    exp = read_yaml(path)
    parsed = [parse_override(o) for o in overrides]
    defaults = exp.pop("defaults", {}) or {}
    if not isinstance(defaults, dict):
        raise BadInput(f"{path}: 'defaults' must map groups to component names, e.g. "
                       "{data: digits, arch: small_cnn}")
    defaults = dict(defaults)
    unknown_groups = [g for g in defaults if g not in GROUPS]
    if unknown_groups:
        g = unknown_groups[0]
        raise BadInput(f"{path}: unknown defaults group '{g}'{did_you_mean(g, GROUPS)}")
    swaps = {k: v for k, v in parsed if k in GROUPS}
    defaults.update(swaps)
    tree: dict[str, Any] = {"name": exp.pop("name", Path(ref).stem)}
    cross: dict[str, Any] = {}
    for group in GROUPS:
        if group in defaults:
            tree[group], also = _load_component(group, defaults[group])
            cross.update(also)
    for key, value in cross.items():
        set_path(tree, key, value)
    tree = deep_merge(tree, exp)
    for key, value in parsed:
        if key not in GROUPS:
            set_path(tree, key, value)
    tree["defaults"] = {g: defaults[g] for g in GROUPS if g in defaults}
    return tree


def validate(tree: dict[str, Any]) -> Recipe:
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        raise BadInput(describe_error(exc)) from None


def describe_error(exc: ValidationError) -> str:
    """First pydantic error as one line; unknown keys get the closest valid key."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        section, _, leaf = loc.rpartition(".")
        near = closest(leaf, fields_at(section))
        hint = f" (did you mean '{section + '.' if section else ''}{near[0]}'?)" if near else \
            did_you_mean(loc, valid_keys())
        return f"unknown key '{loc}'{hint}"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"invalid value for '{loc}': {err['msg']}{shown}"


def fields_at(section: str) -> list[str]:
    """Field names of the schema section at a dotted path ('' = top level)."""
    model: type[BaseModel] = Recipe
    for part in filter(None, section.split(".")):
        ann = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def valid_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += valid_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def load_recipe(name_or_path: str | None = None, overrides: Iterable[str] = ()) -> Recipe:
    """Compose and validate a recipe: the public entry point."""
    return validate(compose(name_or_path, list(overrides)))


def to_yaml(recipe: Recipe) -> str:
    data = recipe.model_dump(mode="json", exclude_none=False)
    if data.get("search") is None:
        data.pop("search", None)
    return yaml.safe_dump(data, sort_keys=False)
