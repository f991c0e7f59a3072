"""`cnnexp sanity` as a function: validate the input, run the chosen checks in order, and
log a parent MLflow run `sanity` with one nested run per check."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnexp.data import DataBundle, build_data
from cnnexp.errors import BadInput, unknown
from cnnexp.models import ModelSpec, build_model
from cnnexp.sanity.base import FAIL, CheckResult, SanityContext
from cnnexp.sanity.data_check import data_check
from cnnexp.sanity.grad_flow import grad_flow
from cnnexp.sanity.log import log_check
from cnnexp.sanity.loss_checks import init_loss, reg_loss
from cnnexp.sanity.lr_check import lr_range
from cnnexp.sanity.overfit import overfit, tiny_subset
from cnnexp.sanity.render import markdown
from cnnexp.schema import Recipe
from cnnexp.tracking import Kind, Recording, tracked
from cnnexp.tracking import tags as T

CHECKS: dict[str, Callable[[SanityContext], CheckResult]] = {
    "data": data_check, "init-loss": init_loss, "reg-loss": reg_loss, "grad-flow": grad_flow,
    "overfit": overfit, "lr-range": lr_range}


MIN_LR_STEPS = 3  # the fewest points every suggestion rule can read


def parse_checks(text: str | None) -> list[str]:
    """'a,b' -> the named checks in canonical order; None or 'all' -> every check. A value
    that names no check (`--checks ,`, `--checks ''`) is bad input, not "nothing failed"."""
    if text is None or text.strip() == "all":
        return list(CHECKS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise BadInput(f"--checks {text!r} names no check (valid: all, {', '.join(CHECKS)})")
    for name in names:
        if name not in CHECKS:
            raise unknown("check", name, CHECKS)
    return [c for c in CHECKS if c in names]


def check_lr_range(sweep: dict[str, Any], steps_flag: str = "--steps") -> None:
    """The LR range test's bounds as bad input before anything runs: positive, finite,
    rising, and enough steps to read a curve."""
    start, end = sweep.get("start_lr", 1e-7), sweep.get("end_lr", 10.0)
    steps = sweep.get("num_steps", 100)
    for flag, value in (("--start-lr", start), ("--end-lr", end)):
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"{flag} {value:g}: a learning rate must be a positive, finite "
                           "number (e.g. --start-lr 1e-7 --end-lr 10)")
    if start >= end:
        raise BadInput(f"--start-lr {start:g} must be below --end-lr {end:g}: the sweep "
                       "raises the LR (e.g. --start-lr 1e-7 --end-lr 10)")
    if steps < MIN_LR_STEPS:
        raise BadInput(f"{steps_flag} {steps}: the sweep needs at least {MIN_LR_STEPS} steps, "
                       f"one per LR (e.g. {steps_flag} 100)")


def check_model(recipe: Recipe, data: DataBundle) -> None:
    """Build the recipe's model once before any run exists: a model that cannot run on the
    data (a zoo model on images too small, BatchNorm on batches of one) is bad input."""
    build_model(recipe, ModelSpec(data.channels, data.num_classes, data.image_size))


def run_check(name: str, ctx: SanityContext) -> CheckResult:
    """One check, timed. A crash inside a check (shape mismatch, out of memory, ...) becomes a
    failed verdict with its reason, so one broken piece does not hide the other verdicts."""
    start = time.perf_counter()
    try:
        result = CHECKS[name](ctx)
    except (BadInput, KeyboardInterrupt):
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result = CheckResult(name, FAIL, "error", "the check to run", reason,
                             {"error": reason})
    result.seconds = time.perf_counter() - start
    return result


def sanity(recipe: Recipe, *, device: torch.device, checks: str | list[str] | None = None,
           tiny: int = 20, experiment: str | None = None, track: bool = True,
           overfit_steps: int = 300, lr_range: dict[str, Any] | None = None,
           model_factory: Callable[[], nn.Module] | None = None,
           data: DataBundle | None = None,
           on_check: Callable[[str], None] = lambda name: None) -> dict[str, Any]:
    """Run the checks; returns what --json prints. Bad input is rejected before any MLflow
    run exists."""
    start = time.perf_counter()
    names = checks if isinstance(checks, list) else parse_checks(checks)
    if not names:
        raise BadInput(f"no check to run (valid: {', '.join(CHECKS)})")
    if overfit_steps < 1:
        raise BadInput(f"--overfit-steps must be at least 1 (got {overfit_steps})")
    if "lr-range" in names:
        check_lr_range(dict(lr_range or {}), "--lr-steps")
    data = (data or build_data(recipe)).to(device)
    if "overfit" in names:
        tiny_subset(data, tiny)  # raises BadInput for a dataset smaller than --tiny
    if model_factory is None:
        check_model(recipe, data)
    ctx = SanityContext(recipe, data, device, model_factory, tiny, overfit_steps,
                        dict(lr_range or {}))
    with tracked(Kind.SANITY, "sanity", enabled=track, experiment=experiment, recipe=recipe,
                 data=data, device=device) as parent:
        results = []
        for name in names:
            with tracked(Kind.SANITY_CHECK, name, parent=parent, tags={T.CHECK: name}) as child:
                on_check(name)
                result = run_check(name, ctx)
                log_check(child, result)
            results.append(result)
        out = _summary(recipe, results, parent, device, start)
        failed = not out["passed"]
        parent.log_metrics({"passed": float(not failed), "seconds": out["seconds"],
                            "failed_checks": sum(r.status == FAIL for r in results)})
        parent.set_tags({T.STATUS: "failed" if failed else "passed"})
        parent.describe(markdown(f"sanity {recipe.name}", out["checks"]))
        if failed:
            parent.fail()
        return out


def _summary(recipe: Recipe, results: list[CheckResult], rec: Recording, device: torch.device,
             start: float) -> dict[str, Any]:
    return {"recipe": recipe.name, "passed": not any(r.status == FAIL for r in results),
            "checks": [r.as_dict() for r in results], "run_id": rec.run_id,
            "experiment_id": rec.experiment_id, "device": str(device),
            "seconds": round(time.perf_counter() - start, 3)}


def find_lr(recipe: Recipe, *, device: torch.device, experiment: str | None = None,
            track: bool = True, lr_range: dict[str, Any] | None = None,
            model_factory: Callable[[], nn.Module] | None = None) -> dict[str, Any]:
    """`cnnexp lr-find`: the lr-range check alone, logged as one MLflow run `lr-find`.
    `lr_range` holds range_test's keyword arguments (start_lr, end_lr, num_steps, on_step)."""
    start = time.perf_counter()
    check_lr_range(dict(lr_range or {}))
    data = build_data(recipe).to(device)
    if model_factory is None:
        check_model(recipe, data)
    ctx = SanityContext(recipe, data, device, model_factory, lr_range=dict(lr_range or {}))
    with tracked(Kind.LR_FIND, "lr-find", enabled=track, experiment=experiment, recipe=recipe,
                 device=device) as rec:
        result = run_check("lr-range", ctx)
        log_check(rec, result)
    check = result.as_dict()
    keys = ("suggested_lr", "suggestions", "agree", "spread_decades", "override", "recipe_lr",
            "steps", "stop_reason")
    return {"recipe": recipe.name, "status": result.status,
            **{k: check.get(k) for k in keys}, "check": check, "run_id": rec.run_id,
            "experiment_id": rec.experiment_id, "device": str(device),
            "seconds": round(time.perf_counter() - start, 3)}
