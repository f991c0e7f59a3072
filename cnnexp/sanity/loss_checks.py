"""init-loss and reg-loss: the loss before any training, without and with cranked-up weight
decay (the course's "loss ~2.3 for 10 classes" and "loss went up, good")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnexp.data.loader import Batches
from cnnexp.sanity.base import (
    FAIL,
    PASS,
    REG_OFF,
    WARN,
    CheckResult,
    SanityContext,
    calibrate_batchnorm,
    finite,
    fmt,
)

REFERENCE_WD = 5e-4  # used when the recipe has no weight decay to multiply up


def sample_inputs(trainer, max_images: int = 512, split: str = "train"
                  ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Up to `max_images` un-augmented, normalised images (in batches) and their labels."""
    setting = trainer.recipe.train.eval_batch_size  # auto: as many as asked, in one batch
    batch = max_images if setting == "auto" else min(setting, max_images)
    xs, ys, seen = [], [], 0
    for xb, yb in Batches(trainer.data, split, batch, trainer.device, False):
        xs.append(trainer.inputs(xb))
        ys.append(yb)
        seen += len(yb)
        if seen >= max_images:
            break
    return xs, torch.cat(ys)


@torch.no_grad()
def eval_logits(trainer, xs: list[torch.Tensor]) -> torch.Tensor:
    """Eval-mode logits after estimating BatchNorm statistics on the same images."""
    model = trainer.model
    with trainer.autocast():
        calibrate_batchnorm(model, xs)
        model.eval()
        return torch.cat([model(x).float() for x in xs])


def init_loss(ctx: SanityContext, tolerance: float = 0.10) -> CheckResult:
    trainer = ctx.trainer(REG_OFF)
    xs, y = sample_inputs(trainer)
    logits = eval_logits(trainer, xs)
    loss = float(F.cross_entropy(logits, y))
    classes = ctx.data.num_classes
    expected = math.log(classes)
    rel = (loss - expected) / expected if finite(loss) else math.inf
    smoothing = ctx.recipe.reg.label_smoothing
    fields = {"loss": loss, "expected_loss": expected, "rel_error": rel, "tolerance": tolerance,
              "num_classes": classes, "images": len(y),
              "accuracy": float((logits.argmax(1) == y).float().mean()),
              "logit_std": float(logits.std()) if logits.numel() > 1 else 0.0}
    if smoothing:  # uniform predictions score ln(C) against smoothed targets too
        fields["label_smoothing"] = smoothing
        fields["loss_with_smoothing"] = float(F.cross_entropy(logits, y,
                                                              label_smoothing=smoothing))
    expect = f"ln({classes}) = {expected:.4f} ± {tolerance:.0%}"
    measured = "non-finite" if not finite(loss) else f"{fmt(loss)} ({rel:+.1%})" \
        if abs(rel) < 10 else f"{fmt(loss)} ({loss / expected:.3g}x ln C)"
    status, hint = PASS, ""
    if not finite(loss):
        status = FAIL
        hint = ("the logits overflow before any training: the weights are far too large "
                "(try arch.init=kaiming, or a much smaller arch.init_std)")
    elif rel > tolerance:
        status = FAIL
        hint = (f"the untrained model is confident (logit std {fields['logit_std']:.3g}): scale "
                "down the final layer and start its bias at zero; arch.init=kaiming/xavier do "
                "this, arch.init=normal with a large arch.init_std does not")
    elif rel < -tolerance:
        status = WARN
        hint = ("the untrained model already beats chance: pretrained weights, or do the "
                "inputs leak the label?")
    return CheckResult("init-loss", status, measured, expect, hint, fields,
                       metrics={"init_loss": loss, "expected_loss": expected,
                                "rel_error": rel, "logit_std": fields["logit_std"]})


def reg_loss(ctx: SanityContext, factor: float = 1e3) -> CheckResult:
    wd, l1 = ctx.recipe.opt.weight_decay, ctx.recipe.reg.l1
    used_wd = wd or REFERENCE_WD
    trainer = ctx.trainer({**REG_OFF, "opt.weight_decay": used_wd * factor,
                           "reg.l1": l1 * factor})
    xs, y = sample_inputs(trainer)
    logits = eval_logits(trainer, xs)
    base = float(F.cross_entropy(logits, y))
    with torch.no_grad():
        # the optimiser's decay as the penalty it stands for: 0.5 * wd * ||w||^2 on exactly
        # the parameters it decays; Trainer.loss adds the (scaled) L1 term itself
        penalty = sum(0.5 * g["weight_decay"] * sum(float(p.float().pow(2).sum())
                                                    for p in g["params"])
                      for g in trainer.optimizer.param_groups if g["weight_decay"] > 0)
        reg = float(trainer.loss(logits, y)) + penalty
    rise = (reg - base) / base if finite(base) and finite(reg) and base > 0 else math.nan
    source = f"weight decay {wd:g}" if wd else f"reference weight decay {REFERENCE_WD:g} " \
                                               "(the recipe has none)"
    fields = {"loss": base, "reg_loss": reg, "rise": rise, "factor": factor,
              "weight_decay": wd, "weight_decay_used": used_wd * factor, "l1": l1,
              "penalty": penalty}
    measured = f"{fmt(base)} -> {fmt(reg)}"
    expected = f"higher than {fmt(base)} with {source} x{factor:g}"
    status, hint = PASS, ""
    if not (finite(base) and finite(reg)):
        status, hint = FAIL, "the loss is not finite; fix init-loss first"
    elif reg <= base:
        status = FAIL
        hint = ("weight decay reaches no parameter: are all weights frozen, or is the "
                "optimiser built without the model's weights?")
    elif rise < 0.01:
        status = WARN
        hint = (f"the penalty barely moves the loss (+{rise:.2%}): the weights are tiny "
                "(arch.init_std?) or few parameters are decayed")
    return CheckResult("reg-loss", status, measured, expected, hint, fields,
                       metrics={"loss": base, "reg_loss": reg, "rise": rise})
