"""Batched per-sample augmentation on the training device.

Every op draws its random numbers for the whole batch at once (flip masks, offsets, boxes,
affine matrices), so there is no per-sample Python in the hot loop. Input: uint8 NCHW on the
device; output: normalised float images and targets (class indices, or class probabilities
when mixup/cutmix mix two labels).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnnexp.schema import AugCfg


class Augmenter:
    def __init__(self, cfg: AugCfg, mean: torch.Tensor, std: torch.Tensor, num_classes: int,
                 generator: torch.Generator) -> None:
        self.cfg, self.num_classes, self.gen = cfg, num_classes, generator
        self.host_rng = random.Random(generator.initial_seed())
        self.mean = mean.view(1, -1, 1, 1)
        self.std = std.view(1, -1, 1, 1)

    def to(self, device: torch.device) -> Augmenter:
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def _rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, device=device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> standardised float32, in one pass."""
        scale = 255.0 if x.dtype == torch.uint8 else 1.0
        return (x.float() - self.mean * scale).mul_(1.0 / (self.std * scale))

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flip, translate and cutout work on uint8 (a quarter of the memory traffic of
        float32); the batch only becomes float for ops that need it (zoom/rotation, colour
        jitter) or at the final fused normalisation."""
        cfg = self.cfg
        n, dev = len(x), x.device
        if cfg.scale or cfg.rotation or cfg.color_jitter:
            x = x.float().div_(255)
        if cfg.flip:
            x = flip(x, self._rand(n, device=dev) < 0.5)
        if cfg.scale or cfg.rotation:
            x = affine(x, self._rand(n, 3, device=dev), cfg.scale, cfg.rotation)
        if cfg.translate:
            x = translate(x, cfg.translate, self._rand(n, 2, device=dev))
        if cfg.color_jitter:
            x = color_jitter(x, cfg.color_jitter, self._rand(n, 3, device=dev))
        if cfg.cutout:  # erase to the mean colour, i.e. zero after normalisation
            fill = self.mean * 255 if x.dtype == torch.uint8 else self.mean
            x = cutout(x, cfg.cutout, self._rand(n, 2, device=dev), fill.to(x.dtype))
        x = self.normalize(x)
        if cfg.mixup or cfg.cutmix:
            return self._mix(x, y)
        return x, y

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix (one per batch, chosen at random when both are on). Per-batch
        scalars come from a host RNG so the device never has to sync."""
        cfg, rng = self.cfg, self.host_rng
        use_cutmix = bool(cfg.cutmix) and (not cfg.mixup or rng.random() < 0.5)
        alpha = cfg.cutmix if use_cutmix else cfg.mixup
        lam = rng.betavariate(alpha, alpha)
        perm = torch.randperm(len(x), generator=self.gen, device=self.gen.device).to(x.device)
        if use_cutmix:
            x, lam = cutmix(x, perm, lam, (rng.random(), rng.random()))
        else:
            x = lam * x + (1 - lam) * x[perm]
        target = F.one_hot(y, self.num_classes).float()
        return x, lam * target + (1 - lam) * target[perm]


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def translate(x: torch.Tensor, pad: int, u: torch.Tensor) -> torch.Tensor:
    """Random crop from a reflect-padded batch: per-sample integer shifts in [-pad, pad]."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect" if pad < min(h, w) else "replicate")
    off = (u * (2 * pad + 1)).long().clamp_(max=2 * pad)
    rows = (off[:, 0:1] + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (off[:, 1:2] + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def affine(x: torch.Tensor, u: torch.Tensor, scale: tuple[float, float] | None,
           rotation: float) -> torch.Tensor:
    """Random zoom and rotation for the whole batch in one grid_sample."""
    s = torch.ones(len(x), device=x.device)
    if scale:
        lo, hi = math.log(scale[0]), math.log(scale[1])
        s = torch.exp(lo + (hi - lo) * u[:, 0])
    angle = (u[:, 1] * 2 - 1) * math.radians(rotation)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, strength: float, u: torch.Tensor) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors in [1 - s, 1 + s]."""
    f = 1 + (u * 2 - 1) * strength
    x = x * f[:, 0].view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * f[:, 1].view(-1, 1, 1, 1) + mean
    if x.shape[1] == 3:
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey) * f[:, 2].view(-1, 1, 1, 1) + grey
    return x.clamp_(0, 1)


def cutout(x: torch.Tensor, size: int, u: torch.Tensor,
           fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Erase a size x size square per sample (centre anywhere, clipped at the border)."""
    n, _, h, w = x.shape
    cy, cx = (u[:, 0] * h).long(), (u[:, 1] * w).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    y0, x0 = (cy - size // 2).view(n, 1, 1), (cx - size // 2).view(n, 1, 1)
    inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    return torch.where(inside.unsqueeze(1), fill, x)


def cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float, u: tuple[float, float]
           ) -> tuple[torch.Tensor, float]:
    """Paste one box (area 1 - lam) from the permuted batch; lam corrected to the real area."""
    _, _, h, w = x.shape
    cut = math.sqrt(1 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(u[0] * h), int(u[1] * w)
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return x, 1 - (y1 - y0) * (x1 - x0) / (h * w)
