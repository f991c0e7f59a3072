"""Batches of uint8 images and labels on the training device.

In-memory data is sliced from tensors already on the device (no host->device copy per batch);
on-disk data comes from a DataLoader with workers, pinned memory and non-blocking copies.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from cnnexp.data.bundle import DataBundle


class Batches:
    def __init__(self, bundle: DataBundle, split: str, batch_size: int, device: torch.device,
                 shuffle: bool, generator: torch.Generator | None = None,
                 drop_last: bool = False) -> None:
        self.bundle, self.split, self.batch_size = bundle, split, batch_size
        self.device, self.shuffle, self.gen = device, shuffle, generator
        self._test = bundle.test() if split == "test" else None
        n = len(self._test) if self._test is not None else \
            bundle.n_train if split == "train" else bundle.n_val
        # drop a last batch of one: BatchNorm cannot train on it
        self.drop_last = drop_last and n > batch_size
        self.n = n
        self._loader = None if bundle.in_memory else self._make_loader()

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def n_images(self) -> int:
        return self.n - (self.n % self.batch_size if self.drop_last else 0)

    def _make_loader(self) -> torch.utils.data.DataLoader:
        ds = {"train": self.bundle.train_set, "val": self.bundle.val_set,
              "test": self._test.dataset if self._test is not None else None}[self.split]
        workers = int(self.bundle.extra.get("num_workers", 2))
        gen = torch.Generator().manual_seed(int(self.gen.initial_seed()) if self.gen else 0)
        return torch.utils.data.DataLoader(
            ds, batch_size=self.batch_size, shuffle=self.shuffle, drop_last=self.drop_last,
            num_workers=workers, pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0, generator=gen)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._loader is not None:
            for x, y in self._loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        x, y = self._arrays()
        assert x is not None and y is not None
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.gen, device=self.gen.device)
            order = order.to(x.device)
        else:
            order = None
        for start in range(0, self.n_images, self.batch_size):
            if order is None:
                xb, yb = x[start:start + self.batch_size], y[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                xb, yb = x[idx], y[idx]
            # no-ops for train/val (already on the device); the test split stays on the CPU
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)

    def _arrays(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self._test is not None:
            return self._test.x, self._test.y
        if self.split == "train":
            return self.bundle.train_x, self.bundle.train_y
        return self.bundle.val_x, self.bundle.val_y
