"""Figures for the sanity checks (matplotlib, Agg backend: no display needed). Each function
takes a CheckResult and returns {artifact path: figure}; the caller logs and closes them."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cnnexp.plotstyle import log_scale, plain_text
from cnnexp.sanity.base import CheckResult

plain_text()  # recipe names are user text: `$` is not math


def data_figures(r: CheckResult) -> dict[str, Any]:
    trainer = r.plot_data["trainer"]
    classes = trainer.data.classes
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(classes)), 3.2))
    n_tr, n_va = sum(r.plot_data["train_hist"]) or 1, sum(r.plot_data["val_hist"]) or 1
    xs = range(len(classes))
    ax.bar([x - 0.2 for x in xs], [h / n_tr for h in r.plot_data["train_hist"]], 0.4,
           label="train")
    ax.bar([x + 0.2 for x in xs], [h / n_va for h in r.plot_data["val_hist"]], 0.4, label="val")
    ax.set_xticks(list(xs), classes if len(classes) <= 30 else [""] * len(classes),
                  rotation=90 if len(classes) > 10 else 0)
    ax.set_ylabel("fraction of split")
    ax.set_title("class histogram")
    ax.legend()
    fig.tight_layout()
    return {"class_histogram.png": fig, "augmented_samples.png": augmented_grid(trainer)}


@torch.no_grad()
def augmented_grid(trainer, n: int = 32, cols: int = 8) -> Any:
    """Training images after augmentation, de-normalised for display, tiled into one image
    (one axes: 32 subplots would cost seconds of layout), each labelled with its class."""
    xb, yb = next(iter(trainer.train_batches))
    x, target = trainer.aug.train_batch(xb[:n], yb[:n])
    x = (x.float() * trainer.aug.std + trainer.aug.mean).clamp(0, 1).cpu()
    labels = (target if target.ndim == 1 else target.argmax(1)).cpu()
    k, c, h, w = x.shape
    rows, pad, band = math.ceil(k / cols), max(1, w // 8), max(3, h // 4)  # band: the label
    sheet = torch.ones(c, rows * (h + band), cols * (w + pad) + pad)
    for i in range(k):
        r, q = divmod(i, cols)
        top, left = r * (h + band), pad + q * (w + pad)
        sheet[:, top:top + h, left:left + w] = x[i]
    fig, ax = plt.subplots(figsize=(cols * 1.1, rows * 1.25))
    img = sheet.permute(1, 2, 0).numpy()
    ax.imshow(img[..., 0] if c == 1 else img, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    for i in range(k):
        r, q = divmod(i, cols)
        ax.text(pad + q * (w + pad) + w / 2, r * (h + band) + h + band / 2 - 0.5,
                trainer.data.classes[int(labels[i])], ha="center", va="center", fontsize=7,
                color="black")
    ax.axis("off")
    ax.set_title("augmented training samples (label below each)", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.94)
    return fig


def grad_flow_figures(r: CheckResult) -> dict[str, Any]:
    layers = r.plot_data["layers"]
    names = [f"{row['layer'] or 'model'} {row['kind'].lower()}" for row in layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.3 * len(names)), 6), sharex=True)
    top.bar(range(len(names)), [row["grad_norm"] for row in layers])
    log_scale(top, "y")
    top.set_ylabel("weight gradient norm")
    top.set_title("gradient flow (input on the left)")
    bottom.plot(range(len(names)), [row["act_std"] for row in layers], "o-", label="std")
    bottom.plot(range(len(names)), [row["act_mean"] for row in layers], "s-", label="mean")
    bottom.set_ylabel("layer output")
    bottom.legend()
    bottom.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    fig.tight_layout()
    return {"grad_flow.png": fig}


def overfit_figures(r: CheckResult) -> dict[str, Any]:
    losses, accs = r.plot_data["losses"], r.plot_data["accs"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = range(1, len(losses) + 1)
    ax.plot(steps, losses, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(steps, accs, color="tab:orange", label="train accuracy")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("accuracy")
    ax.set_title(f"overfit {r.fields.get('examples')} examples: {r.measured}", fontsize=9)
    fig.tight_layout()
    return {"overfit.png": fig}


def lr_range_figure(result: Any) -> Any:
    """The smoothed (and raw) loss against the LR, each rule's suggestion marked."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    n = len(result.smoothed)
    ax.plot(result.lrs[:n], result.losses[:n], color="0.8", lw=0.8, label="loss")
    ax.plot(result.lrs[:n], result.smoothed, color="tab:blue", label="smoothed")
    colours = {"valley": "tab:green", "steepest": "tab:red", "min/10": "tab:purple"}
    for rule, lr in result.suggestions.items():
        ax.axvline(lr, ls="--", color=colours.get(rule, "k"), label=f"{rule} {lr:.2g}")
    if result.suggested_lr:
        ax.axvline(result.suggested_lr, color="k", lw=1.5,
                   label=f"suggested {result.suggested_lr:.2g}")
    log_scale(ax, "x")
    if result.smoothed:
        lo = min(result.smoothed)
        ax.set_ylim(lo - 0.05 * abs(lo), max(result.smoothed[0], lo) * 1.6 + 1e-9)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test ({result.stop_reason})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lr_range_figures(r: CheckResult) -> dict[str, Any]:
    return {"lr_range.png": lr_range_figure(r.plot_data["result"])}


FIGURES = {"data": data_figures, "grad-flow": grad_flow_figures, "overfit": overfit_figures,
           "lr-range": lr_range_figures}


def figures_for(r: CheckResult) -> dict[str, Any]:
    make = FIGURES.get(r.name)
    return make(r) if make and r.plot_data else {}


def close(figs: dict[str, Any]) -> None:
    for fig in figs.values():
        plt.close(fig)
