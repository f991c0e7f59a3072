"""Set-up of a study and its stages in the storage, done exactly once whoever gets there first:
the root study `<study>` (fingerprint, recipe, the MLflow parent run), then each stage study
`<study>/<stage>` (its ranges, narrowed from the previous stage, its MLflow run, its tickets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from cnnexp import tracking
from cnnexp.console import to_jsonable
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe
from cnnexp.redact import redact_url
from cnnexp.search import attrs as A
from cnnexp.search.config import Plan, StagePlan
from cnnexp.search.narrow import Narrowed, Range, Space, edge_side, from_dict, next_space
from cnnexp.search.signal import Point, Signal, analyse, edge_stands_out, rank
from cnnexp.search.storage import Stage, add_tickets, counts, ensure_study, superseded
from cnnexp.tracking import Kind
from cnnexp.tracking import tags as T

RUN_ID = A.RUN_ID
Say = Callable[[str], None]


def stage_study(plan: Plan, name: str) -> str:
    return f"{plan.study}/{name}"


def ensure_root(storage: BaseStorage, plan: Plan, recipe_yaml: str,
                track: bool = True) -> tuple[optuna.Study, tracking.Run | None]:
    """The study's root entry; its creator opens the MLflow parent run. Resuming checks that
    the recipe and space are the ones the study was created with, and reopens the parent run."""

    def setup(study: optuna.Study) -> None:
        study.set_user_attr(A.FINGERPRINT, plan.fingerprint)
        study.set_user_attr(A.RECIPE, recipe_yaml)
        study.set_user_attr(A.METRIC, plan.metric)
        if track:
            study.set_user_attr(RUN_ID, _parent_run(plan).run_id)

    study, _ = ensure_study(storage, plan.study, plan.direction, setup)
    found = study.user_attrs.get(A.FINGERPRINT)
    if found is None:
        raise BadInput(f"study '{plan.study}' exists but was not created by cnnexp search "
                       "(pick another --study)")
    if found != plan.fingerprint:
        raise BadInput(f"study '{plan.study}' was created from a different recipe or search "
                       "space; pass a new --study NAME (or drop --study for an automatic one)")
    if not track:
        return study, None
    parent = tracking.attach(study.user_attrs.get(RUN_ID))
    if parent is None:  # another MLflow store than the first time: start a fresh parent run
        parent = _parent_run(plan)
        study.set_user_attr(RUN_ID, parent.run_id)
    elif tracking.run_status(parent) != "RUNNING":
        tracking.end_run(parent, "RUNNING")
    return study, parent


def _parent_run(plan: Plan) -> tracking.Run:
    start = load_recipe(plan.ref, plan.overrides).flat()  # the user's values: the report's "from"
    r = tracking.start_run(plan.study, plan.study, tags={
        T.KIND: Kind.SEARCH.value, T.RECIPE: plan.recipe_name, T.STUDY: plan.study,
        T.STORAGE: redact_url(plan.storage)}, description=f"Search `{plan.study}` (running)")
    r.log_params({"search.metric": plan.metric, "search.direction": plan.direction,
                  "search.stages": ",".join(s.name for s in plan.stages),
                  **{f"search.space.{p}": v.show() for p, v in plan.space.items()},
                  **{f"search.start.{p}": start.get(p) for p in plan.space}})
    from cnnexp.tracking.views import search_view_tag

    # the experiment's trials view: this study's direction and searched parameters
    for key, value in search_view_tag(plan.direction == "maximize", list(plan.space)).items():
        r.client.set_experiment_tag(r.experiment_id, key, value)
    return r


def completed(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed, counted trials (a re-queued failure counts once, as its retry)."""
    gone = superseded(trials)
    return [t for t in trials if t.state == TrialState.COMPLETE and t.number not in gone
            and t.value is not None]


def point(t: FrozenTrial) -> Point:
    return Point(t.number, float(t.value), float(t.user_attrs.get(A.SECOND, math.nan)),
                 dict(t.params))


def ranked(trials: list[FrozenTrial], metric: str, direction: str) -> list[FrozenTrial]:
    """Completed, counted trials, best first; exact ties go to the better secondary metric
    (the loss for an accuracy), then to the earlier trial."""
    done = {t.number: t for t in completed(trials)}
    return [done[p.number] for p in rank([point(t) for t in done.values()], metric, direction)]


def stage_signal(trials: list[FrozenTrial], metric: str, direction: str) -> Signal:
    """Can this stage's trials be told apart? (see cnnexp.search.signal)"""
    top = ranked(trials, metric, direction)
    gone = superseded(trials)
    counted = [t for t in trials if t.number not in gone]
    sizes = [t.user_attrs.get(A.EVAL_SIZE) for t in counted if t.user_attrs.get(A.EVAL_SIZE)]
    classes = [t.user_attrs.get(A.CLASSES) for t in counted if t.user_attrs.get(A.CLASSES)]
    diverged = sum(1 for t in counted if str(t.user_attrs.get(A.REASON, "")).startswith(
        "diverged"))
    losses = [float(t.user_attrs.get(A.LAST_LOSS, math.nan)) for t in counted
              if A.LAST_LOSS in t.user_attrs]
    return analyse([point(t) for t in top], metric=metric,
                   eval_size=min(sizes) if sizes else None,
                   classes=max(classes) if classes else None, diverged=diverged,
                   last_train_losses=losses)


def stands_out_in(trials: list[FrozenTrial], space: Space, metric: str, direction: str,
                  edge: float, eval_size: int | None):
    """The predicate edge warnings use: does the best value at an edge beat the best trial
    away from that edge by more than noise?"""
    top = ranked(trials, metric, direction)
    points = [point(t) for t in top]

    def check(path: str, side: str) -> bool:
        param = space[path]
        if not points or not isinstance(param, Range):
            return True
        return edge_stands_out(path, side, points[0], points, metric=metric,
                               direction=direction, eval_size=eval_size,
                               in_edge=lambda v: edge_side(v, param, edge) == side)

    return check


def stage_space(study: optuna.Study) -> Space:
    return {p: from_dict(d) for p, d in study.user_attrs[A.RANGES].items()}


def narrow_from(storage: BaseStorage, plan: Plan, prev: StagePlan, stage: StagePlan) -> Narrowed:
    """`stage`'s space from the `stage.top_k` best completed trials of the previous stage."""
    study = optuna.load_study(study_name=stage_study(plan, prev.name), storage=storage)
    space = stage_space(study)
    trials = study.get_trials(deepcopy=False)
    signal = stage_signal(trials, plan.metric, plan.direction)
    study.set_user_attr(A.SIGNAL, to_jsonable(signal.to_dict()))
    top = ranked(trials, plan.metric, plan.direction)[:stage.top_k]
    return next_space(space, [t.params for t in top], top[0].params if top else {},
                      margin=stage.margin, edge=plan.edge, extend=plan.extend,
                      bounds=plan.bounds, signal=signal.signal,
                      stands_out=stands_out_in(trials, space, plan.metric, plan.direction,
                                               plan.edge, signal.eval_size))


def promoted(storage: BaseStorage, plan: Plan, prev: StagePlan,
             stage: StagePlan) -> list[tuple[int, dict[str, Any]]]:
    """(trial number, params) of the previous stage's best `stage.promote` configurations,
    best first: the rungs of successive halving. Each is trained again at this stage's budget,
    which gives the search a value it can stand behind at once and pairs of values at two
    budgets for the fidelity check (cnnexp.search.fidelity)."""
    if stage.promote <= 0:
        return []
    study = optuna.load_study(study_name=stage_study(plan, prev.name), storage=storage)
    top = ranked(study.get_trials(deepcopy=False), plan.metric, plan.direction)
    return [(t.number, dict(t.params)) for t in top[:stage.promote]]


def ensure_stage(storage: BaseStorage, plan: Plan, stage: StagePlan, parent: tracking.Run | None,
                 say: Say) -> tuple[Stage, tracking.Run | None]:
    """The stage's study, created once with its ranges and exactly `stage.trials` tickets."""
    prev = plan.previous(stage.name)

    def setup(study: optuna.Study) -> None:
        narrowed = narrow_from(storage, plan, prev, stage) if prev else None
        space = narrowed.space if narrowed else plan.space
        attrs: dict[str, Any] = {
            A.STAGE: asdict(stage), A.AFTER: prev.name if prev else None,
            A.FINGERPRINT: plan.fingerprint,
            A.RANGES: {p: v.to_dict() for p, v in space.items()},
            A.NARROWING: {p: list(c) for p, c in narrowed.changes.items()} if narrowed else {},
            A.AFTER_SIGNAL: _signal_of(storage, plan, prev) if prev else None,
            A.AFTER_WARNINGS: narrowed.warnings if narrowed else []}
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        if parent is not None:
            r = tracking.start_run(plan.study, stage.name, parent=parent, tags={
                T.KIND: Kind.STAGE.value, T.STAGE: stage.name,
                T.STUDY: study.study_name}, description=narrowing_text(study.user_attrs))
            r.log_params({"stage.trials": stage.trials, "stage.epochs": stage.epochs,
                          "stage.sampler": stage.sampler, "stage.pruner": stage.pruner,
                          "stage.top_k": stage.top_k, "stage.seed": stage.seed,
                          **{f"range.{p}": v.show() for p, v in space.items()}})
            study.set_user_attr(RUN_ID, r.run_id)
        add_tickets(study, stage.trials, promoted(storage, plan, prev, stage) if prev else [])

    study, created = ensure_study(storage, stage_study(plan, stage.name), plan.direction, setup)
    if not created and study.user_attrs.get(A.STAGE, {}).get("trials") != stage.trials:
        say(f"[yellow]note:[/] stage {stage.name} already exists with "
            f"{study.user_attrs['cnnexp.stage']['trials']} trials; keeping that count")
    run = tracking.attach(study.user_attrs.get(RUN_ID)) if parent is not None else None
    if parent is not None and run is None:  # another MLflow store than at creation
        run = tracking.start_run(plan.study, stage.name, parent=parent,
                                 tags={T.KIND: Kind.STAGE.value, T.STAGE: stage.name})
        study.set_user_attr(RUN_ID, run.run_id)
    store = Stage(storage, study)
    if run is not None and not counts(store.trials()).done and tracking.run_status(run) != "RUNNING":
        tracking.end_run(run, "RUNNING")  # resumed after an interrupt
    return store, run


def _signal_of(storage: BaseStorage, plan: Plan, prev: StagePlan) -> dict[str, Any] | None:
    study = optuna.load_study(study_name=stage_study(plan, prev.name), storage=storage)
    return study.user_attrs.get(A.SIGNAL)


def narrowing_text(attrs: dict[str, Any], markdown: bool = True) -> str:
    """Old -> new ranges, in words that match the numbers (narrowed, extended, kept), and why
    (from a stage study's attrs), for the console and the MLflow stage run."""
    st = attrs[A.STAGE]
    bold = "**" if markdown else ""
    budget = f"{st['epochs']} epochs" + (f" on {st['subset']} training images"
                                         if st.get("subset") else "")
    head = f"Stage {bold}{st['name']}{bold}: {st['trials']} trials x {budget}, " \
           f"sampler {st['sampler']}, pruner {st['pruner']}"
    prev = attrs.get(A.AFTER)
    if not prev:
        return head + " (ranges from the recipe)"
    signal = attrs.get(A.AFTER_SIGNAL) or {}
    if signal and not signal.get("signal", True):
        lines = [head + f"; ranges kept: {prev} had no signal ({signal.get('reading', '')})"]
    else:
        lines = [head + f"; ranges from the top trials of {prev}:"]
    for p, change in attrs.get(A.NARROWING, {}).items():
        old, new = change[0], change[1]
        how = change[2] if len(change) > 2 else "narrowed"
        # code spans: MLflow's Markdown reads "[0, 0.14] (narrowed)" as a link and drops the word
        lines.append(f"- `{p}`: `{old}` -> `{new}` ({how})" if markdown else
                     f"  {p}: {old} -> {new} ({how})")
    lines += [("- warning: " if markdown else "  warning: ") + w
              for w in attrs.get(A.AFTER_WARNINGS, [])]
    return "\n".join(lines)
