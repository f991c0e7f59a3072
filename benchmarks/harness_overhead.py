"""1. Harness overhead: cnnexp's engine with MLflow tracking on vs a minimal hand-written loop.

Same model (same seed), same device-resident tensors, same batch size and batched
augmentation, same per-epoch evaluation; each side's figure = training images / wall seconds
of the whole run, and the figure reported is the median of the per-repeat ratios
engine / hand loop (interleaved repeats)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.common import (
    interleaved,
    median,
    paired_ratios,
    repeats_for,
    summarize,
    temp_store,
)
from cnnexp import train as runner
from cnnexp.data import build_data
from cnnexp.data.augment import Augmenter
from cnnexp.engine.optim import build_optimizer
from cnnexp.models import ModelSpec, build_model
from cnnexp.recipe import load_recipe

OVERRIDES = ["data.num_samples=2500", "arch=small_cnn", "aug=flip_translate",
             "aug.translate=4", "opt=sgd", "train.epochs=3", "train.batch_size=128"]
QUICK = ["data.num_samples=600", "train.epochs=1"]


def hand_loop(recipe, data, device: torch.device, hot: list[float]) -> float:
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe, ModelSpec(data.channels, data.num_classes, data.image_size))
    model = model.to(device)
    opt = build_optimizer(recipe.opt, model)
    gen = torch.Generator(device).manual_seed(recipe.train.seed)
    aug = Augmenter(recipe.aug, data.mean, data.std, data.num_classes, gen).to(device)
    x_all, y_all = data.train_x.to(device), data.train_y.to(device)
    vx, vy = data.val_x.to(device), data.val_y.to(device)
    bs, n = recipe.train.batch_size, len(y_all)
    t0 = time.perf_counter()
    images, train_seconds = 0, 0.0
    for _ in range(recipe.train.epochs):
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen, device=device)
        for i in range(0, n - n % bs, bs):
            idx = order[i:i + bs]
            x, y = aug.train_batch(x_all[idx], y_all[idx])
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            images += len(idx)
        train_seconds += time.perf_counter() - t_epoch
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(aug.normalize(vx[j:j + 1024])) for j in range(0, len(vy), 1024)])
            float(F.cross_entropy(logits, vy))
    hot.append(images / train_seconds)  # the training phase alone (no eval, no set-up)
    return images / (time.perf_counter() - t0)


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False) -> dict:
    repeats = repeats_for(repeats, quick)
    dev = torch.device(device)
    recipe = load_recipe("shapes", OVERRIDES + (QUICK if quick else []))
    engine_hot: list[float] = []
    hand_hot: list[float] = []
    data = build_data(recipe)
    images = (data.n_train // recipe.train.batch_size) * recipe.train.batch_size * recipe.train.epochs
    with temp_store():
        runner.train(recipe, device=torch.device(device), data=data, track=True)  # create the store once

        def engine() -> float:
            t0 = time.perf_counter()
            out = runner.train(recipe, device=torch.device(device), data=data, track=True)
            engine_hot.append(out["images_per_sec"])
            return images / (time.perf_counter() - t0)

        res = interleaved({"engine": engine,
                           "hand_loop": lambda: hand_loop(recipe, data, dev, hand_hot)}, repeats)
    ratios = paired_ratios(res["engine"], res["hand_loop"])
    hot = paired_ratios(engine_hot, hand_hot)
    return summarize("harness_overhead", "ratio", ratios, ">= 0.95",
                     label="engine / hand loop, images/s", device=device,
                     sides={"engine_images_per_sec": res["engine"],
                            "hand_loop_images_per_sec": res["hand_loop"]},
                     effect=abs(median(ratios) - 1),
                     # the training phase alone (engine's own images_per_sec vs the hand
                     # loop's): what is left without per-run set-up, evaluation and artifacts
                     hot_loop_ratio=round(median(hot), 3), hot_loop_ratios=hot)
