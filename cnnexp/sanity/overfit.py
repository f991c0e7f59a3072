"""overfit: a tiny training subset, regularisation and augmentation off, must be learned
perfectly. If the model cannot memorise 20 examples, no amount of tuning will help."""

from __future__ import annotations

import math

import torch

from cnnexp.data.bundle import DataBundle
from cnnexp.engine.callbacks import FitState
from cnnexp.engine.loop import is_diverged
from cnnexp.errors import BadInput
from cnnexp.sanity.base import AUG_OFF, FAIL, PASS, REG_OFF, CheckResult, SanityContext, fmt


def tiny_subset(data: DataBundle, n: int) -> DataBundle:
    """The first n training examples (the split is already shuffled) as a new bundle."""
    if n < 1:
        raise BadInput(f"--tiny must be at least 1 (got {n})")
    if n > data.n_train:
        raise BadInput(f"--tiny {n}: dataset '{data.name}' has only {data.n_train} training "
                       f"examples (use --tiny {data.n_train} or fewer)")
    fields = dict(data.__dict__)
    if data.in_memory:
        assert data.train_x is not None and data.train_y is not None
        fields.update(train_x=data.train_x[:n], train_y=data.train_y[:n])
    else:
        fields["train_set"] = torch.utils.data.Subset(data.train_set, range(n))
    return DataBundle(**fields)


def overfit(ctx: SanityContext) -> CheckResult:
    n, budget = ctx.tiny, ctx.overfit_steps
    tiny = tiny_subset(ctx.data, n)
    trainer = ctx.trainer({**REG_OFF, **AUG_OFF, "opt.schedule": "none",
                           "opt.warmup_epochs": 0.0, "train.batch_size": n}, data=tiny)
    state = FitState(trainer.recipe, trainer.model, trainer.data, ctx.device, budget, 1)
    losses: list[float] = []
    accs: list[float] = []
    reached = diverged = False
    for _ in range(budget):  # one full-batch step per "epoch" of the engine
        out = trainer.train_epoch(state, ())
        losses.append(out["train_loss"])
        accs.append(out["train_acc"])
        if is_diverged(out["train_loss"], ctx.data.num_classes):
            diverged = True
            break
        if out["train_acc"] >= 1.0:
            reached = True
            break
    steps, final = len(losses), losses[-1]
    classes = int(torch.unique(tiny.train_y).numel()) if tiny.in_memory else None
    lr = trainer.recipe.opt.lr
    fields = {"examples": n, "steps": steps if reached else None, "step_budget": budget,
              "final_loss": final, "initial_loss": losses[0], "final_acc": accs[-1],
              "best_acc": max(accs), "classes_in_subset": classes, "lr": lr}
    expected = f"100% train accuracy on {n} examples within {budget} steps"
    if reached:
        return CheckResult("overfit", PASS, f"100% after {steps} steps, loss {fmt(final)}",
                           expected, "", fields,
                           metrics={"steps": steps, "final_loss": final, "final_acc": 1.0},
                           plot_data={"losses": losses, "accs": accs})
    if diverged:
        measured = f"loss {fmt(final)} at step {steps}: diverged"
        hint = (f"the loss diverged: opt.lr={lr:g} is too high for this model (the lr-range "
                "check, or `cnnexp lr-find`, suggests one)")
    else:
        measured = f"best accuracy {max(accs):.0%} after {budget} steps, loss {fmt(final)}"
        falling = math.isfinite(final) and final < 0.5 * losses[0]
        hint = ("check that the model's output depends on its input and that the labels match "
                "the images; " + (f"the loss is still falling: raise opt.lr (now {lr:g}) or "
                                  "the budget (--overfit-steps)" if falling else
                                  f"the loss hardly moves: try another opt.lr (now {lr:g})"))
    return CheckResult("overfit", FAIL, measured, expected, hint, fields,
                       metrics={"final_loss": final, "final_acc": accs[-1],
                                "best_acc": max(accs)},
                       plot_data={"losses": losses, "accs": accs})
