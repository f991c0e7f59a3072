"""Compose a recipe: experiment defaults + component files + experiment fields + overrides,
then validate it. Every failure is a BadInput with a one-line, did-you-mean message."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cnnexp.errors import BadInput, did_you_mean, dotted_keys, shorten, validation_message
from cnnexp.schema import GROUPS, Recipe, check_name

DEFAULT_EXPERIMENT = "digits"
# Limits on a recipe or ablation spec, so a hostile or mistaken file fails at once as bad input
# instead of eating memory or minutes: the shipped files are under 2 KB, 4 levels deep and
# hold under 200 values; parsing 128 KiB of dense YAML takes about a second.
MAX_YAML_BYTES = 128 * 1024
MAX_YAML_VALUES = 20_000  # counted with every alias (*name) expanded: stops "billion laughs"
MAX_YAML_DEPTH = 32
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
        if path.is_dir():
            raise BadInput(f"{ref} is a folder, not a recipe file")
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


class YamlRefused(Exception):
    """Well-formed YAML that a recipe may not hold: a duplicate or non-text key, an alias
    inside its own anchor, too many values once aliases are expanded, too deep nesting."""

    def __init__(self, problem: str, node: yaml.Node | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = node.start_mark.line + 1 if node is not None and node.start_mark else None


_STR_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"


def _unique_text_keys(node: yaml.MappingNode) -> None:
    """Mapping keys are text and unique: a repeated key would silently replace the first
    (two ablation arms with one label become one arm)."""
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if key.tag == _MERGE_TAG:  # `<<: *base` merges are meant to be overridden
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise YamlRefused(f"key {shown!r} is not text: quote it or remove it", key)
        line = key.start_mark.line + 1
        if key.value in seen:
            raise YamlRefused(f"duplicate key '{key.value}' (first on line {seen[key.value]})",
                              key)
        seen[key.value] = line


class _Budget:
    """Walks the composed node graph once, before any Python object is built. Aliases share
    nodes, so sizes are memoised per node: a billion-laughs document is measured in linear
    time and refused before it is expanded."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)
        self.open: set[int] = set()

    def visit(self, node: yaml.Node, depth: int = 1) -> tuple[int, int]:
        key = id(node)
        if key in self.open:
            raise YamlRefused("an alias (*name) is used inside its own anchor (&name)", node)
        if key not in self.done:
            if depth > MAX_YAML_DEPTH:
                raise YamlRefused(f"nested more than {MAX_YAML_DEPTH} levels deep", node)
            self.open.add(key)
            self.done[key] = self._measure(node, depth)
            self.open.discard(key)
        values, height = self.done[key]
        if depth + height - 1 > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested more than {MAX_YAML_DEPTH} levels deep", node)
        return values, height

    def _measure(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        if isinstance(node, yaml.MappingNode):
            _unique_text_keys(node)
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        values, height = 1, 1
        for child in children:
            n, h = self.visit(child, depth + 1)
            values, height = values + n, max(height, h + 1)
            if values > MAX_YAML_VALUES:
                raise YamlRefused(f"more than {MAX_YAML_VALUES:,} values, each alias (*name) "
                                  "counted as a copy", node)
        return values, height


class RecipeLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (no tags that run code) that also refuses duplicate and
    non-text keys, recursive aliases, alias bombs and deep nesting (YamlRefused)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _Budget().visit(node)
        return node


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with RecipeLoader. Raises yaml.YAMLError or YamlRefused; deeper
    nesting than the parser can follow is a YamlRefused too."""
    try:
        return yaml.load(text, Loader=RecipeLoader)
    except RecursionError:
        raise YamlRefused(f"nested more than {MAX_YAML_DEPTH} levels deep") from None


def _read_text(path: Path) -> str:
    """The file's text, reading at most one byte past the limit (a 50 MB file, /dev/zero)."""
    with path.open("rb") as f:
        raw = f.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise BadInput(f"{path} is larger than {MAX_YAML_BYTES // 1024} KiB: recipes and "
                       "ablation specs are small YAML files (is it the right file?)")
    return raw.decode("utf-8")


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() \
            else str(path)
    except ValueError:
        return str(path)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_text(_read_text(path))
    except YamlRefused as exc:
        where = f"{_shown(path)}:{exc.line}" if exc.line else _shown(path)
        raise BadInput(f"{where}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{_shown(path)}:{mark.line + 1}" if mark else _shown(path)
        raise BadInput(f"malformed YAML in {where}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed YAML in {_shown(path)}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_override(text: str) -> tuple[str, Any]:
    """`group=name`, `a.b=value` or `+a.b=value` -> (path, YAML-parsed value)."""
    if "=" not in text:
        raise BadInput(f"override '{text}' must look like key=value (e.g. opt.lr=0.05 or arch=lenet5)")
    key, _, raw = text.partition("=")
    key = key.strip().lstrip("+")
    if not _DOTTED_KEY.fullmatch(key):
        if _is_path(key) or Path(text).expanduser().exists():
            raise BadInput(f"'{text}' looks like a recipe path, not an override (key=value): "
                           "give the recipe first, and rename it if its name holds '='")
        raise BadInput(f"override '{text}': '{key}' is not a dotted key like opt.lr")
    if key.split(".")[0] == "defaults":  # compose() rebuilds `defaults`: it would be ignored
        swap = f"{key.partition('.')[2]}={raw}" if "." in key else "arch=vgg"
        raise BadInput(f"override '{text}': defaults cannot be set; swap a component with "
                       f"group=name, e.g. {swap}")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except YamlRefused as exc:
        raise BadInput(f"override '{text}': {exc.problem}") from None
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
    bad = [k for k in also if not _DOTTED_KEY.fullmatch(k) or k.split(".")[0] == "defaults"] \
        if isinstance(also, dict) else [also]
    if bad:
        raise BadInput(f"{group}/{name}.yaml: _global_ must map dotted keys to values, e.g. "
                       f"{{opt.weight_decay: 0.0005}} (got {bad[0]!r})")
    body["name"] = name
    return body, also


def component_values(group: str, name: str) -> dict[str, Any]:
    """A component's own values (recipes/<group>/<name>.yaml, without its `_global_`)."""
    return _load_component(group, name)[0]


def compose(ref: str | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw composed recipe tree (not yet validated)."""
    if ref is None and overrides and _is_path(overrides[0]) and Path(overrides[0]).is_file():
        # a recipe file whose name holds '=' (`runs/lr=0.1.yaml`) read as the first override
        ref, overrides = overrides[0], overrides[1:]
    ref = ref or DEFAULT_EXPERIMENT
    path = find("experiments", ref)
    exp = read_yaml(path)
    if not exp:  # as an empty ablation spec is refused: an empty file is a mistake
        raise BadInput(f"recipe '{ref}' is empty: it needs at least `defaults:` "
                       "(e.g. defaults: {data: digits, arch: small_cnn})")
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
        raise BadInput(validation_message(exc, Recipe)) from None


def valid_keys() -> list[str]:
    """Every recipe key as a dotted path (`opt.lr`)."""
    return dotted_keys(Recipe)


def check_experiment_name(name: str) -> str:
    """`--experiment NAME` held to the recipe name's rule, as it replaces that name in MLflow."""
    try:
        return check_name(name)
    except ValueError as exc:
        raise BadInput(f"invalid --experiment {shorten(repr(name))}: {exc}") from None


def load_recipe(name_or_path: str | None = None, overrides: Iterable[str] = ()) -> Recipe:
    """Compose and validate a recipe: the public entry point."""
    return validate(compose(name_or_path, list(overrides)))


def to_yaml(recipe: Recipe) -> str:
    data = recipe.model_dump(mode="json", exclude_none=False)
    if data.get("search") is None:
        data.pop("search", None)
    return yaml.safe_dump(data, sort_keys=False)
