"""lr-range: Smith's LR range test on the recipe's own training setup, judged."""

from __future__ import annotations

from cnnexp.engine.lr_range import RangeResult, lr_find
from cnnexp.sanity.base import FAIL, PASS, WARN, CheckResult, SanityContext


def judge(result: RangeResult, recipe_lr: float) -> CheckResult:
    """A verdict on a finished sweep: fail when no LR made the loss go down, warn when the
    rules disagree by more than a decade or the recommendation sits at the sweep's edge."""
    fields = {**result.as_dict(), "recipe_lr": recipe_lr}
    rules = ", ".join(f"{k} {v:.2g}" for k, v in result.suggestions.items())
    expected = "a descending curve; the rules agree within a decade"
    lr = result.suggested_lr
    metrics = {"steps": len(result.lrs)}
    if lr is None:
        measured = "the loss never went down" if result.lrs else "no step ran"
        hint = (f"no LR in [{result.start_lr:g}, {result.end_lr:g}] made the loss fall "
                f"({result.stop_reason}): fix init-loss/overfit first, or widen the sweep")
        return CheckResult("lr-range", FAIL, measured, expected, hint, fields, metrics,
                           plot_data={"result": result})
    metrics |= {"suggested_lr": lr, "spread_decades": result.spread_decades,
                **{f"lr_{k.replace('/', '_')}": v for k, v in result.suggestions.items()}}
    measured = f"{lr:.2g} ({rules})"
    status, hint = PASS, ""
    ratio = recipe_lr / lr
    if not result.agree:
        status = WARN
        hint = (f"the rules disagree by {result.spread_decades:.1f} decades: the curve is "
                "noisy or has no clear valley; look at the plot, or rerun with more steps")
    elif result.at_edge():
        status = WARN
        hint = "the suggestion sits at the edge of the sweep: widen --start-lr/--end-lr"
    else:
        hint = f"use {result.override}" + (
            "" if 0.1 <= ratio <= 10 else
            f" (the recipe's opt.lr={recipe_lr:g} is {ratio:.2g}x the suggestion)")
    return CheckResult("lr-range", status, measured, expected, hint, fields, metrics,
                       plot_data={"result": result})


def lr_range(ctx: SanityContext) -> CheckResult:
    trainer = ctx.trainer()
    result = lr_find(trainer, **ctx.lr_range)
    return judge(result, ctx.recipe.opt.lr)
