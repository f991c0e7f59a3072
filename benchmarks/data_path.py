"""2. Data path: batched on-device augmentation vs torchvision v2 per-sample transforms in a
DataLoader with 2 workers; flip + translate(4) + cutout(8) at 32x32 on `shapes`, no model.
Figure: the median over interleaved repeats of the per-repeat ratio of images/sec."""

from __future__ import annotations

import time

import torch

from benchmarks.common import interleaved, median, paired_ratios, repeats_for, summarize
from cnnexp.data import build_data
from cnnexp.data.augment import Augmenter
from cnnexp.data.loader import Batches
from cnnexp.recipe import load_recipe

BATCH = 256


class PerSample(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def torchvision_loader(data, workers: int = 2) -> torch.utils.data.DataLoader:
    from torchvision.transforms import v2

    mean, std = data.mean.tolist(), data.std.tolist()
    side = 8 / 32
    transform = v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomCrop(32, padding=4, padding_mode="reflect"),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
        v2.RandomErasing(p=1.0, scale=(side**2, side**2), ratio=(1.0, 1.0), value=0),
    ])
    return torch.utils.data.DataLoader(PerSample(data.train_x, data.train_y, transform),
                                       batch_size=BATCH, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0, drop_last=True)


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False) -> dict:
    repeats = repeats_for(repeats, quick)
    size = 1500 if quick else 6000
    recipe = load_recipe("shapes", [f"data.num_samples={size}", "aug=flip_translate",
                                    "aug.translate=4", "aug.cutout=8"])
    data = build_data(recipe)
    dev = torch.device(device)
    on_device = data.to(dev)
    gen = torch.Generator(dev).manual_seed(0)
    aug = Augmenter(recipe.aug, data.mean, data.std, data.num_classes, gen).to(dev)
    batches = Batches(on_device, "train", BATCH, dev, True, gen, drop_last=True)

    def batched() -> float:
        t0, n = time.perf_counter(), 0
        for x, y in batches:
            out, _ = aug.train_batch(x, y)
            n += len(out)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t0)

    loader = torchvision_loader(data)
    for _ in loader:  # start the workers before timing
        break

    def per_sample() -> float:
        t0, n = time.perf_counter(), 0
        for x, _ in loader:
            n += len(x.to(dev))
        return n / (time.perf_counter() - t0)

    res = interleaved({"batched_device": batched, "torchvision_dataloader": per_sample}, repeats)
    ratios = paired_ratios(res["batched_device"], res["torchvision_dataloader"])
    return summarize("data_path", "ratio", ratios, ">= 3", digits=2, device=device,
                     label="batched device aug / torchvision DataLoader, images/s",
                     sides={"batched_images_per_sec": res["batched_device"],
                            "torchvision_images_per_sec": res["torchvision_dataloader"]},
                     effect=abs(median(ratios) - 1))
