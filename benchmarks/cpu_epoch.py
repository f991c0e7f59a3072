"""8. CPU epoch: the `fashion_mnist` recipe's epoch (training + validation with its flip TTA)
with today's defaults against the settings before the CPU fast path, side by side in one
process: `train.eval_batch_size=auto` (sized to the CPU caches: cnnexp.engine.eval_batch)
against the former fixed 1024. The memory format is the engine's own choice on both sides
(measured, cached). Figure: the median over interleaved repeats of the per-repeat ratio of
epoch wall seconds, before / now (a speed-up); target >= 1.10. Training images/s of both
sides are reported too: the batch of evaluation does not touch training, so they should agree.

Default: 5,000 training images and the recipe's 6,000 validation images, 5 repeats (~3 min on
two quiet cores). --quick: 1,000 and 1,200, 2 repeats. --full: all 54,000 training images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import interleaved, median, paired_ratios, repeats_for, skipped, summarize
from benchmarks.time_to_accuracy import DEBIAN_ROOT, dataset_files

RECIPE = "fashion_mnist"
TARGET = ">= 1.10"
SIZES = {"default": (5000, None), "quick": (1000, 1200)}  # training images, validation images


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False,
        full: bool = False) -> dict[str, Any]:
    import torch

    from cnnexp.data import build_data
    from cnnexp.engine import fit
    from cnnexp.recipe import load_recipe

    repeats = repeats_for(repeats, quick)
    base = load_recipe(RECIPE)
    root = Path(base.data.root).expanduser() if base.data.root else Path(DEBIAN_ROOT)
    if dataset_files(root) is None:
        return skipped("cpu_epoch", f"Fashion-MNIST IDX files not found in {root} "
                       "(Debian: apt-get install dataset-fashion-mnist)", TARGET)
    subset, val = (None, None) if full else SIZES["quick" if quick else "default"]
    common = ["train.epochs=1", *([f"data.subset={subset}"] if subset else [])]
    recipes = {"now": load_recipe(RECIPE, [*common, "train.eval_batch_size=auto"]),
               "before": load_recipe(RECIPE, [*common, "train.eval_batch_size=1024"])}
    data = build_data(recipes["now"])
    if val:
        data.val_x, data.val_y = data.val_x[:val], data.val_y[:val]
    dev = torch.device(device)
    fits: dict[str, list] = {"now": [], "before": []}

    def epoch(side: str) -> float:
        result = fit(recipes[side], data=data, device=dev)
        fits[side].append(result)
        return result.seconds

    fit(recipes["now"], data=data, device=dev)  # warm-up: kernels, the layout probe
    walls = interleaved({"now": lambda: epoch("now"), "before": lambda: epoch("before")},
                        repeats)
    speedups = paired_ratios(walls["before"], walls["now"])
    trainer = fits["now"][0].trainer
    return summarize("cpu_epoch", "speedup", speedups, TARGET,
                     label="epoch wall before / now (eval batch 1024 -> auto)",
                     sides={"now_seconds": walls["now"], "before_seconds": walls["before"]},
                     effect=abs(median(speedups) - 1), device=device,
                     train_images=data.n_train, val_images=data.n_val,
                     eval_batch_now=trainer.eval_batch_size, eval_batch_before=1024,
                     tta=recipes["now"].aug.tta, channels_last=trainer.channels_last,
                     train_images_per_sec_now=round(median(
                         [r.images_per_sec for r in fits["now"]]), 1),
                     train_images_per_sec_before=round(median(
                         [r.images_per_sec for r in fits["before"]]), 1))
