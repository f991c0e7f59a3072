"""grad-flow: one forward/backward pass of the training loss, then per layer the activation
statistics, the weight-gradient norm and the dead-ReLU fraction.

The course's check: the gradient norm of the first layer's weights, against the last
layer's, tells whether the signal reaches the bottom of the network (vanishing gradients)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnexp.sanity.base import FAIL, PASS, WARN, CheckResult, SanityContext, fmt

VANISH, EXPLODE, DEAD = 1e-3, 1e3, 0.5


def _layer_stats(trainer) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Run one training step's forward and backward (no optimiser step) with hooks."""
    model: nn.Module = trainer.model
    names = {m: n for n, m in model.named_modules()}
    layers: list[dict[str, Any]] = []
    relus: list[dict[str, Any]] = []
    seen: set[nn.Module] = set()

    def on_weighted(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        if module in seen:  # a layer used twice is reported once, where it first ran
            return
        seen.add(module)
        o = out.detach().float()
        layers.append({"layer": names[module], "module": module,
                       "kind": type(module).__name__, "act_mean": float(o.mean()),
                       "act_std": float(o.std()) if o.numel() > 1 else 0.0})

    def on_relu(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        alive = (out.detach() > 0).any(dim=0)  # a unit is dead if no sample activates it
        relus.append({"layer": names[module], "dead": 1.0 - float(alive.float().mean())})

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad:
            hooks.append(m.register_forward_hook(on_weighted))
        elif isinstance(m, nn.ReLU):
            hooks.append(m.register_forward_hook(on_relu))
    try:
        model.train()
        xb, yb = next(iter(trainer.train_batches))
        x, target = trainer.aug.train_batch(xb, yb)
        loss, _ = trainer.forward_loss(x, target)
        trainer.backward(loss)  # gradients only: no optimiser step
    finally:
        for h in hooks:
            h.remove()
    for row in layers:
        w = row.pop("module").weight
        row["grad_norm"] = float(w.grad.float().norm()) if w.grad is not None else math.nan
        row["weight_norm"] = float(w.detach().float().norm())
        row["has_grad"] = w.grad is not None
    return layers, relus, float(loss.detach())


def grad_flow(ctx: SanityContext) -> CheckResult:
    trainer = ctx.trainer()
    layers, relus, loss = _layer_stats(trainer)
    if not layers:
        return CheckResult("grad-flow", FAIL, "no trainable conv/linear layer ran",
                           "gradients in every layer", "is everything frozen?")
    first, last = layers[0], layers[-1]
    ratio = first["grad_norm"] / last["grad_norm"] if last["grad_norm"] else math.nan
    dead = max((r["dead"] for r in relus), default=0.0)
    worst_relu = max(relus, key=lambda r: r["dead"])["layer"] if relus else ""
    no_grad = [r["layer"] for r in layers if not r["has_grad"] or r["grad_norm"] == 0]
    bad = [r["layer"] for r in layers if r["has_grad"] and not math.isfinite(r["grad_norm"])]
    fields = {"loss": loss, "first_layer": first["layer"], "last_layer": last["layer"],
              "first_grad_norm": first["grad_norm"], "last_grad_norm": last["grad_norm"],
              "ratio": ratio, "max_dead_relu": dead, "layers": layers, "relus": relus}
    measured = f"first/last grad norm {fmt(ratio, 3)}, dead ReLU max {dead:.0%}"
    expected = f"ratio in [{VANISH:g}, {EXPLODE:g}], dead ReLU < {DEAD:.0%}"
    status, hint = PASS, ""
    if not math.isfinite(loss) or bad:
        status = FAIL
        hint = f"non-finite loss or gradients ({', '.join(bad[:3]) or 'loss'}): fix init-loss"
    elif no_grad:
        status = FAIL
        hint = (f"no gradient reaches {', '.join(no_grad[:3])}: a detached tensor, a frozen "
                "path, or an input that is multiplied away")
    elif ratio < VANISH:
        status = WARN
        hint = ("vanishing gradients: the first layer learns ~1000x slower than the last; "
                "add normalisation (arch.norm=batch), shortcuts (arch=resnet20) or a "
                "Kaiming init")
    elif ratio > EXPLODE:
        status = WARN
        hint = "exploding gradients toward the input: lower the init scale or clip (opt.grad_clip)"
    elif dead > DEAD:
        status = WARN
        hint = (f"{dead:.0%} of the units in {worst_relu} never fire on a batch: check the "
                "init, a large negative bias, or try arch.activation=gelu")
    metrics = {"loss": loss, "first_grad_norm": first["grad_norm"],
               "last_grad_norm": last["grad_norm"], "grad_ratio": ratio, "max_dead_relu": dead}
    return CheckResult("grad-flow", status, measured, expected, hint, fields, metrics,
                       plot_data={"layers": layers, "relus": relus})
