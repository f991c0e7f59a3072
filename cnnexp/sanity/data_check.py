"""data: do the splits hold the same classes in similar proportions, and do the inputs the
model sees have mean ~0 and std ~1 per channel after normalisation?"""

from __future__ import annotations

from typing import Any

import torch

from cnnexp.data.bundle import DataBundle
from cnnexp.data.loader import Batches
from cnnexp.sanity.base import FAIL, PASS, WARN, CheckResult, SanityContext

MISMATCH_WARN = 0.10  # total-variation distance between the class distributions
MEAN_WARN, MEAN_FAIL = 0.2, 0.5  # |per-channel mean| after normalisation
STD_WARN, STD_FAIL = (0.7, 1.4), (0.5, 2.0)  # per-channel std after normalisation


def split_labels(data: DataBundle, split: str) -> torch.Tensor:
    if data.in_memory:
        y = data.train_y if split == "train" else data.val_y
        assert y is not None
        return y.cpu()
    ds: Any = data.train_set if split == "train" else data.val_set
    for attr in ("labels", "targets"):
        if hasattr(ds, attr):
            return torch.as_tensor(list(getattr(ds, attr))).long()
    if isinstance(ds, torch.utils.data.Subset) and hasattr(ds.dataset, "labels"):
        return torch.as_tensor([ds.dataset.labels[i] for i in ds.indices]).long()
    return torch.as_tensor([int(ds[i][1]) for i in range(len(ds))]).long()


def channel_moments(trainer, split: str, max_images: int = 4096
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std of normalised, un-augmented inputs (as the model sees them)."""
    total = torch.zeros(3, trainer.data.channels, dtype=torch.float64)
    seen = 0
    for xb, _ in Batches(trainer.data, split, 1024, trainer.device, False):
        x = trainer.aug.normalize(xb).double()
        total[0] += x.sum(dim=(0, 2, 3)).cpu()
        total[1] += x.pow(2).sum(dim=(0, 2, 3)).cpu()
        total[2] += x[0, 0].numel() * len(x)
        seen += len(x)
        if seen >= max_images:
            break
    mean = total[0] / total[2]
    std = (total[1] / total[2] - mean.pow(2)).clamp_min(0).sqrt()
    return mean.float(), std.float()


def _stats_verdict(mean: torch.Tensor, std: torch.Tensor) -> str:
    m, lo, hi = float(mean.abs().max()), float(std.min()), float(std.max())
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
        return FAIL
    if m > MEAN_FAIL or lo < STD_FAIL[0] or hi > STD_FAIL[1]:
        return FAIL
    if m > MEAN_WARN or lo < STD_WARN[0] or hi > STD_WARN[1]:
        return WARN
    return PASS


def data_check(ctx: SanityContext) -> CheckResult:
    trainer = ctx.trainer()
    classes = ctx.data.classes
    c = len(classes)
    y_train, y_val = split_labels(ctx.data, "train"), split_labels(ctx.data, "val")
    out_of_range = int(((y_train < 0) | (y_train >= c)).sum() + ((y_val < 0) | (y_val >= c)).sum())
    h_train = torch.bincount(y_train.clamp(0, c - 1), minlength=c)
    h_val = torch.bincount(y_val.clamp(0, c - 1), minlength=c)
    p_train, p_val = h_train / h_train.sum(), h_val / max(int(h_val.sum()), 1)
    tv = 0.5 * float((p_train - p_val).abs().sum())
    missing_train = [classes[k] for k in range(c) if h_train[k] == 0]
    missing_val = [classes[k] for k in range(c) if h_val[k] == 0]
    stats = {split: channel_moments(trainer, split) for split in ("train", "val")}
    verdicts = [_stats_verdict(*stats[s]) for s in stats]
    worst_mean = max(float(m.abs().max()) for m, _ in stats.values())
    std_range = (min(float(s.min()) for _, s in stats.values()),
                 max(float(s.max()) for _, s in stats.values()))
    problems: list[tuple[str, str]] = []
    if out_of_range:
        problems.append((FAIL, f"{out_of_range} labels outside 0..{c - 1}"))
    if missing_train:
        problems.append((FAIL, f"classes absent from train: {', '.join(missing_train[:5])}"))
    if FAIL in verdicts or WARN in verdicts:
        problems.append((FAIL if FAIL in verdicts else WARN,
                         f"normalised inputs have |mean| up to {worst_mean:.2f} and std "
                         f"{std_range[0]:.2f}..{std_range[1]:.2f}: the normalisation "
                         "statistics do not match the data"))
    if missing_val:
        problems.append((WARN, f"classes absent from val: {', '.join(missing_val[:5])}"))
    if tv > MISMATCH_WARN:
        problems.append((WARN, f"train and val class proportions differ by {tv:.0%} (total "
                               "variation): is the split stratified?"))
    status = FAIL if any(s == FAIL for s, _ in problems) else WARN if problems else PASS
    fields = {"train_examples": len(y_train), "val_examples": len(y_val),
              "train_hist": h_train.tolist(), "val_hist": h_val.tolist(),
              "class_mismatch": tv, "missing_in_train": missing_train,
              "missing_in_val": missing_val, "labels_out_of_range": out_of_range,
              **{f"{s}_mean": m.tolist() for s, (m, _) in stats.items()},
              **{f"{s}_std": sd.tolist() for s, (_, sd) in stats.items()}}
    measured = (f"mean |max| {worst_mean:.2f}, std {std_range[0]:.2f}..{std_range[1]:.2f}, "
                f"class mismatch {tv:.1%}")
    expected = (f"mean ~0 (<{MEAN_WARN}), std ~1, every class in both splits, mismatch "
                f"<{MISMATCH_WARN:.0%}")
    metrics = {"class_mismatch": tv, "max_abs_mean": worst_mean, "min_std": std_range[0],
               "max_std": std_range[1], "train_examples": len(y_train),
               "val_examples": len(y_val)}
    return CheckResult("data", status, measured, expected, "; ".join(p for _, p in problems),
                       fields, metrics,
                       plot_data={"trainer": trainer, "train_hist": h_train.tolist(),
                                  "val_hist": h_val.tolist()})
