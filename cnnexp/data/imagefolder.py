"""Users' own images: a folder with one sub-folder per class, read from disk by a DataLoader."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnexp.data.bundle import DataBundle, stratified_split
from cnnexp.data.registry import DATASETS
from cnnexp.errors import BadInput
from cnnexp.schema import DataCfg

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageFiles(torch.utils.data.Dataset):
    """(uint8 CHW tensor at a fixed size, label) per file; decoded in the worker."""

    def __init__(self, files: list[Path], labels: list[int], size: int, channels: int) -> None:
        self.files, self.labels, self.size, self.channels = files, labels, size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("RGB" if self.channels == 3 else "L")
            im = im.resize((self.size, self.size), Image.BILINEAR)
            x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return x.view(self.size, self.size, self.channels).permute(2, 0, 1).contiguous(), \
            self.labels[i]


def _scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    if not root.is_dir():
        raise BadInput(f"data.path '{root}' is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for k, name in enumerate(classes):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() in EXTENSIONS:
                files.append(f)
                labels.append(k)
    if len(classes) < 2 or not files:
        raise BadInput(f"data.path '{root}' holds no images in class sub-folders "
                       f"(need at least 2 class folders with {', '.join(sorted(EXTENSIONS))} files)")
    return files, labels, classes


def _check_images(files: list[Path]) -> tuple[int, str]:
    """Verify every file is a readable image (header + data); return (first size, mode)."""
    from PIL import Image, UnidentifiedImageError

    first = None
    for f in files:
        try:
            with Image.open(f) as im:
                im.verify()
                first = first or (im.size[0], im.mode)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BadInput(f"unreadable image {f}: {exc}".splitlines()[0]) from None
    assert first is not None
    return first


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataCfg) -> DataBundle:
    files, labels, classes = _scan(Path(cfg.path or ".").expanduser())
    width, mode = _check_images(files)
    size = cfg.resize or width
    channels = 1 if mode in ("L", "1", "I;16") else 3
    y = torch.tensor(labels)
    train_idx, val_idx = stratified_split(y, cfg.val_fraction, cfg.split_seed)
    if cfg.subset:
        train_idx = train_idx[: cfg.subset]
    pick = lambda idx: ImageFiles([files[i] for i in idx], [labels[i] for i in idx],  # noqa: E731
                                  size, channels)
    train_set, val_set = pick(train_idx.tolist()), pick(val_idx.tolist())
    sample = torch.stack([train_set[i][0] for i in range(min(len(train_set), 256))])
    from cnnexp.data.bundle import channel_stats

    mean, std = channel_stats(sample)
    return DataBundle(name="imagefolder", classes=classes, mean=mean, std=std, channels=channels,
                      image_size=size, train_set=train_set, val_set=val_set,
                      source=f"imagefolder:{Path(cfg.path or '.').resolve()}",
                      extra={"num_workers": cfg.num_workers})
