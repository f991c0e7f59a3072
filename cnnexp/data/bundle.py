"""What every dataset builder returns: uint8 images (in memory) or an on-disk dataset, split
into train (fit), val (every decision) and a held-out test split (the final figure only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# The held-out test split of a data set without an official one is drawn with this fixed seed,
# before and independently of the train/val split: no training seed or split seed moves an
# image between test and the rest.
TEST_SPLIT_SEED = 20_231_118


@dataclass
class HeldOut:
    """The test split, read only through DataBundle.test(): nothing that makes a decision
    (sanity, search, ablate, early stopping, best-epoch choice) may look at it."""

    x: torch.Tensor | None = None  # in memory: uint8 NCHW, kept on the CPU
    y: torch.Tensor | None = None
    dataset: torch.utils.data.Dataset | None = None  # on disk
    origin: str = ""  # "official test set" or "held out 20% (stratified, fixed seed)"

    def __len__(self) -> int:
        return len(self.y) if self.y is not None else len(self.dataset)  # type: ignore[arg-type]


@dataclass
class DataBundle:
    """Train/val splits. In-memory datasets hold uint8 NCHW tensors; on-disk ones hold torch
    Datasets yielding (uint8 CHW tensor, label). `mean`/`std` are per channel on the [0, 1]
    scale, from the training split."""

    name: str
    classes: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    channels: int
    image_size: int
    train_x: torch.Tensor | None = None
    train_y: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    train_set: torch.utils.data.Dataset | None = None
    val_set: torch.utils.data.Dataset | None = None
    held_out: HeldOut | None = None
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_memory(self) -> bool:
        return self.train_x is not None

    @property
    def n_train(self) -> int:
        return len(self.train_y) if self.in_memory else len(self.train_set)  # type: ignore[arg-type]

    @property
    def n_val(self) -> int:
        return len(self.val_y) if self.in_memory else len(self.val_set)  # type: ignore[arg-type]

    @property
    def n_test(self) -> int:
        return len(self.held_out) if self.held_out is not None else 0

    @property
    def test_origin(self) -> str:
        return self.held_out.origin if self.held_out is not None else ""

    def test(self) -> HeldOut:
        """The held-out test split: the one door to it (the final evaluation, `--test`)."""
        if self.held_out is None or len(self.held_out) == 0:
            from cnnexp.errors import BadInput

            raise BadInput(f"dataset '{self.name}' has no test split (data.test_fraction=0 "
                           "and no official test set)")
        return self.held_out

    def to(self, device: torch.device) -> DataBundle:
        """The same bundle with its tensors on `device` (copied once, not per batch)."""
        if not self.in_memory:
            return self
        move = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y")}
        return DataBundle(**{**self.__dict__, **move})


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Train/val indices with each class split in the same proportion, seeded."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = round(len(idx) * val_fraction)
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    train_idx = torch.cat(train)
    return train_idx[torch.randperm(len(train_idx), generator=gen)], torch.cat(val).sort().values


def channel_stats(x: torch.Tensor, max_images: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std on the [0, 1] scale from (up to) the first max_images."""
    sample = x[:max_images].float().div_(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize a uint8 NCHW tensor (antialiased bilinear), in chunks to bound memory."""
    import torch.nn.functional as F

    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = [F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
           for i in range(0, len(x), chunk)]
    return torch.cat(out)


def hold_out(x: torch.Tensor, y: torch.Tensor, test_fraction: float
             ) -> tuple[torch.Tensor, torch.Tensor, HeldOut]:
    """Split off a fixed, stratified test fraction (seed-independent); returns the rest."""
    if test_fraction <= 0:
        return x, y, HeldOut(x[:0], y[:0], origin="none (data.test_fraction=0)")
    rest, test = stratified_split(y, test_fraction, TEST_SPLIT_SEED)
    rest = rest.sort().values  # keep the original order: the train/val split is drawn next
    return x[rest], y[rest], HeldOut(
        x[test].contiguous(), y[test], origin=f"held out {test_fraction:.0%} (stratified, "
                                              "fixed seed)")


def from_arrays(name: str, x: torch.Tensor, y: torch.Tensor, classes: list[str], *,
                val_fraction: float, split_seed: int, resize: int | None, subset: int | None,
                source: str, test: tuple[torch.Tensor, torch.Tensor] | None = None,
                test_fraction: float = 0.0) -> DataBundle:
    """An in-memory bundle from all images (uint8 NCHW) and labels: resize, split, stats.

    `test` is the data set's official test split; without one, `test_fraction` of the images
    is held out (stratified, fixed seed) before the train/val split."""
    if resize:
        from cnnexp.data.memory import check_images_fit

        total = len(x) + (len(test[0]) if test is not None else 0)
        check_images_fit(total, x.shape[1], resize, f"data.resize={resize}")
        x = resize_uint8(x, resize)
    if test is not None:
        tx = resize_uint8(test[0], resize) if resize else test[0]
        held = HeldOut(tx.contiguous(), test[1], origin="official test set")
    else:
        x, y, held = hold_out(x, y, test_fraction)
    train_idx, val_idx = stratified_split(y, val_fraction, split_seed)
    if subset:
        train_idx = train_idx[:subset]
    train_x, val_x = x[train_idx].contiguous(), x[val_idx].contiguous()
    mean, std = channel_stats(train_x)
    return DataBundle(name=name, classes=classes, mean=mean, std=std, channels=x.shape[1],
                      image_size=x.shape[-1], train_x=train_x, train_y=y[train_idx],
                      val_x=val_x, val_y=y[val_idx], held_out=held, source=source)
