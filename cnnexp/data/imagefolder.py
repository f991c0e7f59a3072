"""Users' own images: a folder with one sub-folder per class, read from disk by a DataLoader.

`data.path` holding `train/` and `test/` (each with the class folders) uses `test/` as the
held-out test split; otherwise data.test_fraction of the images is held out (stratified,
fixed seed) before the train/val split."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from cnnexp.data.bundle import TEST_SPLIT_SEED, DataBundle, HeldOut, stratified_split
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
            im = _eight_bit(im)
            im = im.convert("RGB" if self.channels == 3 else "L")
            im = im.resize((self.size, self.size), Image.BILINEAR)
            x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return x.view(self.size, self.size, self.channels).permute(2, 0, 1).contiguous(), \
            self.labels[i]


def _eight_bit(im: Any) -> Any:
    """16-bit greyscale (PNG mode I;16 or I) scaled to 8 bits: Pillow's convert("L") clips it
    at 255, which turns nearly every pixel white."""
    if not im.mode.startswith("I"):
        return im
    import numpy as np
    from PIL import Image

    wide = np.asarray(im, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")


MIN_SIDE = 8  # below this a network has nothing to convolve; set data.resize


def _images_in(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in EXTENSIONS and f.is_file()]


def _scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    if not root.is_dir():
        raise BadInput(f"data.path '{root}' is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [_images_in(root / name) for name in classes]
    kinds = ", ".join(sorted(EXTENSIONS))
    filled = [name for name, found in zip(classes, per_class, strict=True) if found]
    if len(filled) == 1:
        raise BadInput(f"data.path '{root}': only class folder '{filled[0]}' holds images; a "
                       f"classifier needs at least 2 class folders with {kinds} files")
    if not filled:
        raise BadInput(f"data.path '{root}' holds no images in class sub-folders "
                       f"(need at least 2 class folders with {kinds} files)")
    empty = [name for name, found in zip(classes, per_class, strict=True) if not found]
    if empty:  # an empty class would still be an output of the model, one it can never learn
        raise BadInput(f"data.path '{root}': class folder '{empty[0]}' holds no images "
                       f"({kinds}): add some or remove the folder")
    files = [f for found in per_class for f in found]
    labels = [k for k, found in enumerate(per_class) for _ in found]
    return files, labels, classes


def _check_image(f: Path) -> tuple[int, str]:
    """Decode one file completely, so that a corrupt or truncated image is bad input when the
    dataset is built, not an OSError in a DataLoader worker mid-run. Returns (width, mode)."""
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow only warns between 89M and 179M pixels; no training image is that large
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(f) as im:
                im.verify()  # container checks (PNG CRCs) before any decoding
            with Image.open(f) as im:
                width, mode = im.size[0], im.mode
                im.draft(mode, (1, 1))  # JPEG: decode at 1/8 scale; every byte is still read
                im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadInput(f"image {f} is too large: {exc}") from None
        except Exception as exc:  # Pillow raises many types for broken files
            raise BadInput(f"unreadable image {f}: {exc}".splitlines()[0]) from None
    return width, mode


def _check_images(files: list[Path]) -> tuple[int, str]:
    """Every file decodes; returns the first one's (width, mode)."""
    found = [_check_image(f) for f in files]
    return found[0]


def _official_test(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """The files of root/test/ labelled by root/train/'s classes."""
    files, labels, names = _scan(root / "test")
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise BadInput(f"data.path '{root}': test/ has class folder '{unknown[0]}' that train/ "
                       f"does not have (train classes: {', '.join(classes[:8])})")
    _check_images(files)
    return files, [classes.index(names[k]) for k in labels]


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataCfg) -> DataBundle:
    root = Path(cfg.path or ".").expanduser()
    split_folders = (root / "train").is_dir() and (root / "test").is_dir()
    files, labels, classes = _scan(root / "train" if split_folders else root)
    width, mode = _check_images(files)
    if not cfg.resize and width < MIN_SIDE:
        raise BadInput(f"data.path '{root}': data.resize is null, so images take the first "
                       f"image's size, and {files[0].name} is {width} px wide: set "
                       "data.resize (e.g. data.resize=32)")
    size = cfg.resize or width
    channels = 1 if mode in ("L", "1") or mode.startswith("I") else 3
    y = torch.tensor(labels)
    if split_folders:
        test_files, test_labels = _official_test(root, classes)
        origin = "the test/ folder"
    else:
        keep = torch.arange(len(files))
        test_idx = keep[:0]
        if cfg.test_fraction > 0:
            keep, test_idx = stratified_split(y, cfg.test_fraction, TEST_SPLIT_SEED)
            keep = keep.sort().values
        test_files = [files[i] for i in test_idx.tolist()]
        test_labels = [labels[i] for i in test_idx.tolist()]
        files, labels = [files[i] for i in keep.tolist()], [labels[i] for i in keep.tolist()]
        y = torch.tensor(labels)
        origin = (f"held out {cfg.test_fraction:.0%} (stratified, fixed seed)"
                  if cfg.test_fraction > 0 else "none (data.test_fraction=0)")
    held = HeldOut(dataset=ImageFiles(test_files, test_labels, size, channels), origin=origin)
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
                      image_size=size, train_set=train_set, val_set=val_set, held_out=held,
                      source=f"imagefolder:{root.resolve()}",
                      extra={"num_workers": cfg.num_workers})
