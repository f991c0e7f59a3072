"""Review figures: learning curves with the diagnosis, confusion matrix, top-loss examples.

Built on matplotlib's Figure directly (no pyplot): no GUI backend, no global state, safe in
worker threads. Callers log the figures (or encode them for the HTML report)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnnexp.plotstyle import log_scale, plain_text

plain_text()  # run names and class folders are user text: `$` is not math


def curves_figure(history: Sequence[Mapping[str, float]], title: str = "",
                  best_epoch: int | None = None) -> Figure:
    """Loss and accuracy per epoch, train vs val (the plots the diagnosis reads)."""
    fig = Figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = [h.get(f"{split}_{metric}", math.nan) for h in history]
            ax.plot(epochs, ys, style, ms=3, label=split)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if all(h.get("train_loss", 0) > 0 for h in history):
        log_scale(ax_loss, "y")  # losses span decades; the late epochs stay readable
    ax_acc.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_counts(logits: torch.Tensor, labels: torch.Tensor, num_classes: int
                     ) -> torch.Tensor:
    """[true, predicted] counts."""
    pred = logits.argmax(1)
    idx = labels.long() * num_classes + pred.long()
    return torch.bincount(idx.cpu(), minlength=num_classes * num_classes).view(
        num_classes, num_classes)


def confusion_figure(cm: torch.Tensor, classes: Sequence[str], title: str = "") -> Figure:
    """Colour = share of the true class (row-normalised); counts written when it fits."""
    n = len(classes)
    side = min(max(4.0, 0.45 * n + 1.5), 16.0)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.subplots()
    rows = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    ticks = list(range(n))
    labels = list(classes) if n <= 40 else [""] * n
    ax.set_xticks(ticks, labels, rotation=90 if n > 10 else 0, fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black")
    acc = float(cm.diag().sum()) / max(float(cm.sum()), 1.0)
    ax.set_title(title or f"confusion matrix (val, accuracy {acc:.3f})", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_csv(cm: torch.Tensor, classes: Sequence[str]) -> str:
    """The counts as CSV, class names quoted as needed (a folder named `cats, big` or one
    holding a newline is one cell, and the readers use the csv module too)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\predicted", *classes])
    for c, row in zip(classes, cm.tolist(), strict=True):
        w.writerow([c, *(int(v) for v in row)])
    return buf.getvalue()


MAX_MATRIX_CLASSES = 200  # above: the most confused pairs, not a C x C matrix (C^2 cells)


def confused_pairs_csv(logits: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                       k: int = 100) -> str:
    """The k most frequent (true, predicted) mistakes with their counts, computed from the
    mistakes themselves (no C x C matrix: 10,000 classes would make it 800 MB)."""
    import csv
    import io

    pred = logits.argmax(1)
    wrong = pred != labels
    pairs, counts = torch.unique(torch.stack([labels[wrong], pred[wrong]], 1), dim=0,
                                 return_counts=True)
    order = counts.argsort(descending=True)[:k].tolist()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true", "predicted", "count"])
    for i in order:
        t, p = pairs[i].tolist()
        w.writerow([classes[t], classes[p], int(counts[i])])
    return buf.getvalue()


def log_confusion(r: Any, logits: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                  folder: str) -> torch.Tensor | None:
    """FOLDER/confusion_matrix.csv (its figure is drawn later), or, with more than
    MAX_MATRIX_CLASSES classes, FOLDER/confused_pairs.csv; returns the matrix when made."""
    if len(classes) > MAX_MATRIX_CLASSES:
        r.log_text(confused_pairs_csv(logits, labels, classes), f"{folder}/confused_pairs.csv")
        return None
    cm = confusion_counts(logits, labels, len(classes))
    r.log_text(confusion_csv(cm, classes), f"{folder}/confusion_matrix.csv")
    return cm


def top_losses(logits: torch.Tensor, labels: torch.Tensor, k: int = 16
               ) -> list[dict[str, Any]]:
    """The k validation examples with the highest loss: index, true, predicted, p(pred)."""
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    probs = logits.float().softmax(1)
    order = losses.argsort(descending=True)[:k].tolist()
    return [{"index": i, "loss": float(losses[i]), "true": int(labels[i]),
             "pred": int(probs[i].argmax()), "p_pred": float(probs[i].max()),
             "p_true": float(probs[i, labels[i]])} for i in order]


def val_image(data: Any, index: int) -> torch.Tensor:
    """One validation image as uint8 CHW on the CPU (in-memory or on-disk bundle)."""
    if data.in_memory:
        return data.val_x[index].cpu()
    return data.val_set[index][0]


def top_loss_figure(rows: Sequence[Mapping[str, Any]], data: Any, cols: int = 4) -> Figure:
    """Grid of the images the model is most wrong about, titled true -> predicted.

    One mosaic image in one Axes (16 separate Axes cost ~4x the rendering time, paid on every
    training run)."""
    n = max(len(rows), 1)
    cols = min(cols, n)
    nrows = math.ceil(n / cols)
    names = data.classes
    tiles = [val_image(data, row["index"]) for row in rows]
    c, h, w = tiles[0].shape if tiles else (1, 8, 8)
    scale = max(1, 64 // max(h, w))  # small images upscaled (nearest) so the grid is legible
    th, tw = h * scale, w * scale
    pad_top, pad = 22, 4  # room for the two-line label above each tile
    mosaic = torch.full((c, nrows * (th + pad_top) + pad, cols * (tw + pad) + pad), 255,
                        dtype=torch.uint8)
    for i, tile in enumerate(tiles):
        r, k = divmod(i, cols)
        y, x = r * (th + pad_top) + pad_top, k * (tw + pad) + pad
        big = tile.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        mosaic[:, y:y + th, x:x + tw] = big
    fig = Figure(figsize=(1.9 * cols, 1.9 * nrows + 0.4))
    ax = fig.add_axes((0, 0, 1, 0.93))
    ax.axis("off")
    img = mosaic.permute(1, 2, 0).numpy()
    gray = img.shape[2] == 1
    ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None,
              interpolation="nearest", vmin=0, vmax=255)
    for i, row in enumerate(rows):
        r, k = divmod(i, cols)
        ax.text(k * (tw + pad) + pad, r * (th + pad_top) + pad_top - 2,
                f"{names[row['true']]} -> {names[row['pred']]}\n"
                f"p={row['p_pred']:.2f} loss={row['loss']:.2f}", fontsize=7, va="bottom",
                color="black" if row["true"] == row["pred"] else "darkred")
    fig.suptitle("top losses (val): true -> predicted", fontsize=10)
    return fig


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
