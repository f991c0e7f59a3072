"""The recipe's `search` section: its schema, the flattened space, stage selection and
`--trials`, checked against the recipe schema so that bad input fails before any trial runs."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import annotated_types as at
from pydantic import Field, ValidationError

from cnnexp import metrics
from cnnexp.errors import BadInput, did_you_mean, validation_message
from cnnexp.recipe import available, compose, set_path, valid_keys, validate
from cnnexp.schema import GROUPS, MAX_SEED, Recipe, Strict
from cnnexp.search.narrow import Bound, Choice, Param, Range, Space

SAMPLERS = ("random", "qmc", "tpe")
PRUNERS = ("none", "median", "hyperband")
METRICS = ("val_acc", "train_acc", "val_loss", "train_loss")  # what a stage may rank by
SPEC_KEYS = ("low", "high", "log", "choices")
MAX_TRIALS = 10_000  # per stage: more is a typo (and minutes of bookkeeping before any trial)


class StageCfg(Strict):
    trials: int = Field(ge=1, le=MAX_TRIALS)
    epochs: int = Field(ge=1, le=100000)
    # train each trial on at most this many training examples (a cheap coarse stage); the
    # validation split, and so the comparison, stays the full one
    subset: int | None = Field(None, ge=2)
    sampler: str = "random"
    pruner: str = "none"
    # a later stage's ranges span the top_k best trials of the stage before it, padded by
    # margin x the old width on each side
    top_k: int = Field(5, ge=1)
    margin: float = Field(0.1, gt=0.0, le=1.0)
    # successive halving between stages: the first trials of a later stage re-train the best
    # configurations of the stage before it at this stage's budget (default: the top_k that
    # set its ranges, at most half its trials; never more than top_k); 0 samples afresh
    promote: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)  # default: search.seed + stage index


class ConfirmCfg(Strict):
    """The confirming stage after the last search stage: the best configuration and the
    recipe as written, retrained on the same `seeds` seeds at the final budget, compared by a
    paired t-test; `auto` adds seeds until decided (at most `max_seeds`). `epochs`: default
    the recipe's own train.epochs (the final budget)."""

    seeds: Annotated[int, Field(ge=1, le=100)] | Literal["auto"] = 3
    max_seeds: int = Field(6, ge=2, le=100)  # the cap of `seeds: auto`
    epochs: int | None = Field(None, ge=1, le=100000)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)


class SearchCfg(Strict):
    metric: str = "val_acc"
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    summary: Literal["best", "last"] = "best"  # a trial's value: best epoch or last epoch
    edge: float = Field(0.1, gt=0.0, lt=0.5)  # outer fraction of a range that counts as edge
    extend: float = Field(1.0, gt=0.0, le=10.0)  # decades past an edge (log ranges)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    space: dict[str, Any]
    stages: dict[str, StageCfg]
    confirm: ConfirmCfg = Field(default_factory=ConfirmCfg)
    budget: str | None = None  # wall-clock budget (`30m`): plan the search to fit it
    # the final run's time (`20m`): best.yaml trains as many epochs as fit it on this machine
    # (search/final_budget.py); none: the recipe's own train.epochs
    final_budget: str | None = None


@dataclass(frozen=True)
class StagePlan:
    name: str
    trials: int
    epochs: int
    sampler: str
    pruner: str
    top_k: int
    margin: float
    seed: int
    subset: int | None = None
    promote: int = 0  # configurations of the previous stage re-trained first


@dataclass
class Plan:
    """Everything a worker needs to run trials of a study (picklable for spawned workers)."""

    ref: str | None
    overrides: list[str]
    recipe_name: str
    metric: str
    direction: str
    summary: str
    edge: float
    extend: float
    space: Space
    stages: list[StagePlan]
    fingerprint: str
    bounds: dict[str, Bound] = field(default_factory=dict)
    confirm: ConfirmCfg = field(default_factory=ConfirmCfg)
    study: str = ""
    storage: str = ""
    budget: str | None = None  # the recipe's search.budget (--budget overrides it)
    final_budget: str | None = None  # the recipe's search.final_budget (--final-budget too)
    # with a budget: {"deadline": time.time() to end by, "trial_seconds": {stage: s}}
    deadline: dict[str, Any] | None = None

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.name == name)

    def previous(self, name: str) -> StagePlan | None:
        i = [s.name for s in self.stages].index(name)
        return self.stages[i - 1] if i else None


def searchable() -> list[str]:
    keys = [k for k in valid_keys() if k.split(".")[0] in (*GROUPS, "train")
            and not k.endswith(".name") and k != "train.epochs"]
    return [*GROUPS, *keys]


def flatten_space(raw: dict[str, Any]) -> dict[str, Any]:
    """`{opt: {lr: {...}}}` and `{opt.lr: {...}}` both become `{"opt.lr": {...}}`; later entries
    (command-line overrides) update earlier ones field by field; `null` removes a parameter."""
    return {k: v for k, v in _flatten(raw, "", set(searchable())).items() if v is not None}


def _flatten(raw: dict[str, Any], prefix: str, fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        leaf_param = path in fields and path not in GROUPS  # `opt.lr.lg=..`: a typo'd key
        if isinstance(value, dict) and value and not set(value) & set(SPEC_KEYS) \
                and not leaf_param:
            for sub, spec in _flatten(value, f"{path}.", fields).items():
                _put(out, sub, spec)
        else:
            _put(out, path, value)
    return out


def _put(out: dict[str, Any], path: str, spec: Any) -> None:
    if isinstance(spec, dict) and isinstance(out.get(path), dict):
        out[path] = {**out[path], **spec}
    else:
        out[path] = spec


def field_of(path: str) -> Any:
    group, _, leaf = path.partition(".")
    model = Recipe.model_fields[group].annotation
    return model.model_fields[leaf]  # type: ignore[union-attr]


def schema_bound(path: str) -> Bound:
    """The field's valid [low, high] from its pydantic constraints (exclusive ones nudged in)."""
    lo = hi = None
    for m in field_of(path).metadata:
        if isinstance(m, at.Ge):
            lo = float(m.ge)
        elif isinstance(m, at.Gt):
            lo = float(m.gt) + 1e-9 * max(1.0, abs(float(m.gt)))
        elif isinstance(m, at.Le):
            hi = float(m.le)
        elif isinstance(m, at.Lt):
            hi = float(m.lt) - 1e-9 * max(1.0, abs(float(m.lt)))
    return lo, hi


def _kind(path: str) -> str:
    ann = field_of(path).annotation
    types = set(get_args(ann)) or {ann}
    if bool in types:
        return "bool"
    if int in types:
        return "int"
    if float in types:
        return "float"
    return "other"


def _number(path: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        hint = ""
        with contextlib.suppress(TypeError, ValueError):
            float(value)
            hint = " (YAML reads it as text: write 1.0e-4 / 1.0e+3, with a dot and a sign)"
        raise BadInput(f"search.space.{path}.{key} must be a finite number, got {value!r}{hint}")
    return float(value)


def parse_param(path: str, spec: Any) -> Param:
    """One space entry -> Range | Choice, with the range checks the issue lists."""
    where = f"search.space.{path}"
    if path not in searchable():
        hint = " (train.epochs is set by each stage)" if path == "train.epochs" else \
            did_you_mean(path, searchable())
        raise BadInput(f"unknown search parameter '{path}'{hint}")
    if not isinstance(spec, dict):
        raise BadInput(f"{where}: expected {{low: .., high: .., log: ..}} or {{choices: [..]}}, "
                       f"got {spec!r}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise BadInput(f"{where}: unknown key '{key}'{did_you_mean(key, SPEC_KEYS)}")
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise BadInput(f"{where}: use either choices or low/high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise BadInput(f"{where}.choices must be a non-empty list")
        if path in GROUPS:
            for c in choices:
                if c not in available(path):
                    raise BadInput(f"{where}: unknown {path} component '{c}'"
                                   f"{did_you_mean(str(c), available(path))}")
        return Choice(tuple(choices))
    if path in GROUPS or _kind(path) not in ("int", "float"):
        raise BadInput(f"{where}: {path} is not numeric; give {{choices: [..]}}")
    for key in ("low", "high"):
        if key not in spec:
            raise BadInput(f"{where}: missing '{key}' (a range needs low and high)")
    low, high = _number(path, "low", spec["low"]), _number(path, "high", spec["high"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise BadInput(f"{where}.log must be true or false, got {log!r}")
    if low > high:
        raise BadInput(f"{where}: inverted range, low={low:g} > high={high:g}")
    if low == high:
        raise BadInput(f"{where}: empty range, low == high == {low:g}")
    if log and low <= 0:
        raise BadInput(f"{where}: log: true needs low > 0, got low={low:g}")
    integer = _kind(path) == "int"
    if integer and not (low.is_integer() and high.is_integer()):
        raise BadInput(f"{where}: {path} is an integer; low and high must be whole numbers")
    return Range(low, high, log, integer)


def _check_values(tree: dict[str, Any], path: str, param: Param) -> None:
    """Every end of a range (every choice) must give a valid recipe: fail now, not mid-search."""
    if path in GROUPS:  # component names were checked against the recipe folders
        return
    values = param.choices if isinstance(param, Choice) else \
        (int(param.low) if param.integer else param.low, int(param.high) if param.integer else param.high)
    for value in values:
        t = copy.deepcopy(tree)
        set_path(t, path, value)
        try:
            Recipe.model_validate(t)
        except ValidationError as exc:
            raise BadInput(f"search.space.{path}: value {value!r} is not valid "
                           f"({validation_message(exc, Recipe)})") from None
        if path == "arch.zoo_model":  # a name the schema cannot check: torchvision's list
            from cnnexp.models.zoo import check_zoo_name

            try:
                check_zoo_name(str(value))
            except BadInput as exc:
                raise BadInput(f"search.space.{path}: {exc}") from None


def parse_trials(text: str | None, names: list[str]) -> dict[str, int]:
    """`8` (every stage) or `coarse=8,fine=4`."""
    if not text:
        return {}
    out: dict[str, int] = {}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for part in parts:
        name, eq, count = part.rpartition("=") if "=" in part else ("", "", part)
        if eq and name not in names:
            raise BadInput(f"--trials: unknown stage '{name}'{did_you_mean(name, names)}")
        if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= MAX_TRIALS:
            raise BadInput(f"--trials: '{part}' needs a positive whole number up to {MAX_TRIALS} "
                           "(e.g. --trials 8 or --trials coarse=8,fine=4)")
        for n in ([name] if eq else names):
            out[n] = int(count)
    return out


def build_plan(ref: str | None, overrides: list[str], *, stages: str | None = None,
               trials: str | None = None) -> Plan:
    """Compose the recipe, validate its search section and return the plan (or BadInput)."""
    tree = compose(ref, overrides)
    recipe = validate(tree)
    if not recipe.search:
        raise BadInput(f"recipe '{recipe.name}' has no search section (add one, see "
                       "docs/search.md, or try `cnnexp search digits`)")
    try:
        cfg = SearchCfg.model_validate(recipe.search)
    except ValidationError as exc:
        raise BadInput(validation_message(exc, SearchCfg, "search")) from None
    if cfg.metric not in METRICS:
        raise BadInput(f"search.metric: unknown metric '{cfg.metric}'{did_you_mean(cfg.metric, METRICS)}")
    for name, st in cfg.stages.items():
        if st.sampler not in SAMPLERS:
            raise BadInput(f"search.stages.{name}.sampler: unknown sampler '{st.sampler}'"
                           f"{did_you_mean(st.sampler, SAMPLERS)}")
        if st.pruner not in PRUNERS:
            raise BadInput(f"search.stages.{name}.pruner: unknown pruner '{st.pruner}'"
                           f"{did_you_mean(st.pruner, PRUNERS)}")
    if not cfg.stages:
        raise BadInput("search.stages is empty: define at least one stage (e.g. coarse)")
    names = [s.strip() for s in stages.split(",") if s.strip()] if stages else list(cfg.stages)
    for n in names:
        if n not in cfg.stages:
            raise BadInput(f"unknown stage '{n}'{did_you_mean(n, cfg.stages)}")
    if len(set(names)) != len(names) or not names:
        raise BadInput(f"--stages: list each stage once, e.g. {','.join(cfg.stages)}")
    counts = parse_trials(trials, names)
    raw = flatten_space(cfg.space)
    if not raw:
        raise BadInput("search.space is empty: add at least one parameter (e.g. opt.lr)")
    space = {path: parse_param(path, spec) for path, spec in raw.items()}
    clean = {k: v for k, v in tree.items() if k != "search"}
    for path, param in space.items():
        _check_values(clean, path, param)
    direction = metrics.direction(cfg.metric) if cfg.direction == "auto" else cfg.direction
    plans = [StagePlan(n, counts.get(n, cfg.stages[n].trials), cfg.stages[n].epochs,
                       cfg.stages[n].sampler, cfg.stages[n].pruner, cfg.stages[n].top_k,
                       cfg.stages[n].margin,
                       cfg.stages[n].seed if cfg.stages[n].seed is not None else cfg.seed + i,
                       cfg.stages[n].subset,
                       _promote(cfg.stages[n], i, counts.get(n, cfg.stages[n].trials)))
             for i, n in enumerate(names)]
    bounds = {p: schema_bound(p) for p, v in space.items() if isinstance(v, Range)}
    fp = fingerprint(recipe, cfg, space, direction)
    return Plan(ref, list(overrides), recipe.name, cfg.metric, direction, cfg.summary, cfg.edge,
                cfg.extend, space, plans, fp, bounds, cfg.confirm, budget=cfg.budget,
                final_budget=cfg.final_budget)


def _promote(st: StageCfg, index: int, trials: int) -> int:
    """How many of the previous stage's best configurations a stage re-trains first."""
    if index == 0:
        return 0  # nothing before it
    if st.promote is not None:  # never past top_k: those set the narrowed ranges and
        return min(st.promote, trials, st.top_k)  # choices, so every promoted value fits
    return min(st.top_k, (trials + 1) // 2)


def fingerprint(recipe: Recipe, cfg: SearchCfg, space: Space, direction: str) -> str:
    """Identifies what a study searches; trial counts are left out so they can change."""
    body = recipe.model_dump(mode="json", exclude={"search", "name", "description"})
    stages = {n: s.model_dump(exclude={"trials"}) for n, s in cfg.stages.items()}
    blob = json.dumps({"recipe": body, "space": {p: v.to_dict() for p, v in space.items()},
                       "stages": stages, "metric": cfg.metric, "direction": direction,
                       "summary": cfg.summary, "edge": cfg.edge, "extend": cfg.extend,
                       "seed": cfg.seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def trial_recipe(plan: Plan, params: dict[str, Any], epochs: int,
                 subset: int | None = None, one_view: bool = False) -> Recipe:
    """The base recipe with a trial's parameters (component swaps composed, fields set), its
    stage's epochs and, for a trial, its stage's training subset. `one_view`: validate on the
    plain images only (no flip TTA): a search trial's value ranks configurations, and
    test-time augmentation, which doubles the cost of every evaluation, moves them all alike;
    it is kept where a figure is reported (the confirming stage, final runs)."""
    swaps = [f"{g}={params[g]}" for g in GROUPS if g in params]
    tree = compose(plan.ref, [*plan.overrides, *swaps])
    tree.pop("search", None)
    for path, value in params.items():
        if path not in GROUPS:
            set_path(tree, path, int(value) if plan.space.get(path) is not None
                     and isinstance(plan.space[path], Range) and plan.space[path].integer
                     else value)
    set_path(tree, "train.epochs", epochs)
    if subset is not None:
        own = (tree.get("data") or {}).get("subset")
        set_path(tree, "data.subset", min(subset, own) if own else subset)
    if one_view:
        set_path(tree, "aug.tta", False)
    return validate(tree)
