"""A minimal hand-written PyTorch script: the `fashion_mnist` recipe's training without cnnexp.

The yardstick of benchmarks/time_to_accuracy.py. Only torch and numpy: the IDX files read with
gzip + numpy, uint8 tensors in memory, batches by index slicing, the small CNN written out
(the same layers, nesting and initialisation as cnnexp's small_cnn), SGD with Nesterov
momentum and weight decay on weights only, a per-step one-cycle schedule, label smoothing and
batched flip/translate. It holds out the same validation images as cnnexp (the same seeded
stratified split) and evaluates on them each epoch, so both do the same work; the last
epoch's weights are evaluated on the official test set. Prints one JSON line.

    python benchmarks/plain_fashion_mnist.py --subset 5000 --epochs 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): magic (type, ndim), one uint32 per dimension, the bytes."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    stem = "train" if split == "train" else "t10k"
    find = lambda name: next(p for p in (root / name, root / f"{name}.gz") if p.exists())  # noqa: E731
    x = read_idx(find(f"{stem}-images-idx3-ubyte"))
    y = read_idx(find(f"{stem}-labels-idx1-ubyte"))
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def stratified_split(y: torch.Tensor, val_fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The same train/val indices as cnnexp's split: per class a seeded permutation, the first
    round(n * val_fraction) to validation, then the training indices shuffled."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = min(max(round(len(idx) * val_fraction), 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    tr = torch.cat(train)
    return tr[torch.randperm(len(tr), generator=gen)], torch.cat(val).sort().values


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def small_cnn(width: int = 32, classes: int = 10, channels: int = 1) -> nn.Sequential:
    w = width
    model = nn.Sequential(
        block(channels, w), block(w, w), nn.MaxPool2d(2, ceil_mode=True),
        block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2, ceil_mode=True),
        block(2 * w, 4 * w),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Identity(),
                      nn.Linear(4 * w, classes)))
    for m in model.modules():  # He init; the classifier scaled down so the first loss ~ ln C
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        model[-1][-1].weight.mul_(0.1)
    return model


def augment(x: torch.Tensor, flip: bool, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Batched random horizontal flip and translate (crop of a reflect-padded batch), uint8."""
    n, c, h, w = x.shape
    if flip:
        x = torch.where((torch.rand(n, generator=gen, device=x.device) < 0.5).view(-1, 1, 1, 1),
                        x.flip(3), x)
    if pad:
        off = (torch.rand(n, 2, generator=gen, device=x.device) * (2 * pad + 1)).long()
        off = off.clamp_(max=2 * pad)
        padded = F.pad(x, (pad,) * 4, mode="reflect")
        rows = (off[:, :1] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
        x = padded.gather(2, rows.expand(n, c, h, w + 2 * pad))
        cols = (off[:, 1:] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
        x = x.gather(3, cols.expand(n, c, h, w))
    return x


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm, batch: int
             ) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(norm(x[i:i + batch])) for i in range(0, len(x), batch)])
    y = y.to(logits.device)
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--device", default="cpu")
    p.add_argument("--subset", type=int, default=None, help="training images (default: all)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--translate", type=int, default=0)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    dev = torch.device(a.device)
    t0 = time.perf_counter()

    x, y = load(Path(a.root), "train")
    test_x, test_y = load(Path(a.root), "test")
    tr, va = stratified_split(y, a.val_fraction, a.split_seed)
    tr = tr[:a.subset] if a.subset else tr
    train_x, train_y = x[tr].to(dev), y[tr].to(dev)
    val_x, val_y = x[va].to(dev), y[va].to(dev)
    sample = train_x[:10000].float().div_(255)
    mean, std = sample.mean(), sample.std()
    norm = lambda b: (b.to(dev).float() / 255 - mean) / std  # noqa: E731
    data_seconds = time.perf_counter() - t0

    torch.manual_seed(a.seed)
    model = small_cnn(a.width).to(dev)
    decay = [q for q in model.parameters() if q.ndim > 1]
    rest = [q for q in model.parameters() if q.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=a.lr, momentum=a.momentum, nesterov=a.nesterov)
    n, bs = len(train_y), a.batch_size
    steps = n // bs if n > bs else 1  # full batches only: BatchNorm and a batch of one
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps * a.epochs)
    gen = torch.Generator(dev).manual_seed(a.seed)

    t1 = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen, device=dev)
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            xb = norm(augment(train_x[idx], a.flip, a.translate, gen))
            loss = F.cross_entropy(model(xb), train_y[idx], label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val_acc, val_loss = evaluate(model, val_x, val_y, norm, a.eval_batch_size)
        print(f"epoch {epoch}: loss {float(loss.detach()):.4f} val_loss {val_loss:.4f} "
              f"val_acc {val_acc:.4f}", flush=True,
              file=sys.stderr)
    train_seconds = time.perf_counter() - t1
    test_acc, test_loss = evaluate(model, test_x, test_y, norm, a.eval_batch_size)
    print(json.dumps({"test_acc": test_acc, "test_loss": test_loss, "test_images": len(test_y),
                      "val_acc": val_acc, "epochs": a.epochs, "train_images": n,
                      "data_seconds": round(data_seconds, 3),
                      "train_seconds": round(train_seconds, 3),
                      "test_seconds": round(time.perf_counter() - t1 - train_seconds, 3)}))


if __name__ == "__main__":
    main()
