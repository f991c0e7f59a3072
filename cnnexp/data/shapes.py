"""Procedurally generated coloured shapes on cluttered backgrounds: a CIFAR-sized workload at
any size and resolution, deterministic per seed, no download.

Class k is shape k % 10; with more than 10 classes, k // 10 also picks a hue band, so the
colour becomes part of the label (up to 60 classes)."""

from __future__ import annotations

import math

import torch

from cnnexp.data.bundle import DataBundle, from_arrays
from cnnexp.data.memory import check_images_fit
from cnnexp.data.registry import DATASETS
from cnnexp.errors import BadInput
from cnnexp.schema import DataCfg

SHAPES = ["circle", "square", "triangle", "cross", "ring", "diamond", "bar", "x", "half_disc",
          "two_dots"]
MAX_HUES = 6


def _masks(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """All 10 shape masks at local coordinates (u, v), stacked as (10, N, S, S)."""
    r = torch.sqrt(u * u + v * v)
    return torch.stack([
        r <= 0.9,
        torch.maximum(u.abs(), v.abs()) <= 0.75,
        (v <= 0.8) & (v >= -0.8) & (u.abs() <= (v + 0.8) * 0.55),
        ((u.abs() <= 0.25) & (v.abs() <= 0.9)) | ((v.abs() <= 0.25) & (u.abs() <= 0.9)),
        (r <= 0.95) & (r >= 0.55),
        u.abs() + v.abs() <= 0.95,
        (v.abs() <= 0.3) & (u.abs() <= 1.0),
        ((u.abs() - v.abs()).abs() <= 0.22) & (torch.maximum(u.abs(), v.abs()) <= 0.85),
        (r <= 0.95) & (v >= 0),
        ((u - 0.5) ** 2 + v**2 <= 0.16) | ((u + 0.5) ** 2 + v**2 <= 0.16),
    ])


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def render(labels: torch.Tensor, size: int, gen: torch.Generator, num_classes: int) -> torch.Tensor:
    """Images (uint8 N,3,S,S) for the given labels."""
    n = len(labels)
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    # background: a random colour gradient plus noise and two distractor blobs
    base, tint = rand(n, 3, 1, 1) * 0.6, rand(n, 3, 1, 1) * 0.4 - 0.2
    img = base + tint * xx + 0.08 * torch.randn(n, 3, size, size, generator=gen)
    for _ in range(2):
        c = rand(n, 2, 1, 1) * 2 - 1
        blob = ((xx - c[:, :1]) ** 2 + (yy - c[:, 1:]) ** 2) <= (0.05 + 0.1 * rand(n, 1, 1, 1)) ** 2
        img = torch.where(blob, rand(n, 3, 1, 1), img)
    # the shape: random centre, radius and a small rotation (orientation stays meaningful)
    cx, cy = (rand(n, 1, 1) * 0.8 - 0.4), (rand(n, 1, 1) * 0.8 - 0.4)
    radius = 0.35 + rand(n, 1, 1) * 0.25
    theta = (rand(n, 1, 1) - 0.5) * (math.pi / 4.5)
    dx, dy = xx - cx, yy - cy
    u = (dx * torch.cos(theta) + dy * torch.sin(theta)) / radius
    v = (-dx * torch.sin(theta) + dy * torch.cos(theta)) / radius
    mask = _masks(u, v)[labels % 10, torch.arange(n)].unsqueeze(1)
    if num_classes > 10:
        band = (labels // 10).float()
        hue = (band + 0.15 + 0.7 * rand(n)) / MAX_HUES
    else:
        hue = rand(n)
    colour = _hsv_to_rgb(hue, 0.6 + 0.4 * rand(n), 0.7 + 0.3 * rand(n))[:, :, None, None]
    img = torch.where(mask, colour, img)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


@DATASETS.register("shapes")
def shapes(cfg: DataCfg) -> DataBundle:
    if cfg.num_classes > 10 * MAX_HUES:
        raise BadInput(f"shapes supports at most {10 * MAX_HUES} classes (got data.num_classes="
                       f"{cfg.num_classes})")
    side = max(cfg.image_size, cfg.resize or 0)
    knob = f"data.num_samples={cfg.num_samples}" + (
        f" with data.resize={cfg.resize}" if side > cfg.image_size
        else f" at data.image_size={cfg.image_size}")
    check_images_fit(cfg.num_samples, 3, side, knob)
    gen = torch.Generator().manual_seed(1000 + cfg.split_seed)
    labels = torch.arange(cfg.num_samples) % cfg.num_classes
    labels = labels[torch.randperm(cfg.num_samples, generator=gen)]
    chunk = max(1, 2_000_000 // (cfg.image_size**2))
    x = torch.cat([render(labels[i:i + chunk], cfg.image_size, gen, cfg.num_classes)
                   for i in range(0, cfg.num_samples, chunk)])
    names = [SHAPES[k % 10] + (f"_h{k // 10}" if cfg.num_classes > 10 else "")
             for k in range(cfg.num_classes)]
    return from_arrays("shapes", x, labels, names, val_fraction=cfg.val_fraction,
                       split_seed=cfg.split_seed, resize=cfg.resize, subset=cfg.subset,
                       test_fraction=cfg.test_fraction, source=f"shapes(n={cfg.num_samples}, size={cfg.image_size}, "
                              f"classes={cfg.num_classes})")
