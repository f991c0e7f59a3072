"""Images from files and folders, made into what a packaged model takes: converted to its
channels (grey or RGB), resized to its size as its data was (bilinear, like the image-folder
loader), stacked as uint8 (N, H, W, C). A file that cannot be read is named and skipped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Skipped:
    path: str
    reason: str


def expand(paths: Iterable[str]) -> tuple[list[Path], list[Skipped]]:
    """Files as given; folders walked (sorted) for image suffixes; missing paths skipped."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file()
                            and f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            skipped.append(Skipped(raw, "no such file or folder"))
    return files, skipped


def load(path: Path, size: int, channels: int) -> np.ndarray:
    """(size, size, channels) uint8. 16-bit and float images are scaled to 0-255 first (a
    plain convert("L") would clip them)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        im = im.convert("RGB" if channels == 3 else "L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def batches(files: list[Path], size: int, channels: int, batch: int
            ) -> Iterator[tuple[list[Path], np.ndarray, list[Skipped]]]:
    """Readable images in batches, with the files of each batch that could not be read."""
    good: list[Path] = []
    arrays: list[np.ndarray] = []
    bad: list[Skipped] = []
    for f in files:
        try:
            arrays.append(load(f, size, channels))
            good.append(f)
        except Exception as exc:  # PIL raises many kinds for a corrupt or foreign file
            bad.append(Skipped(str(f), f"cannot read as an image ({type(exc).__name__})"))
        if len(arrays) == batch:
            yield good, np.stack(arrays), bad
            good, arrays, bad = [], [], []
    if arrays or bad:
        empty = np.zeros((0, size, size, channels), np.uint8)
        yield good, np.stack(arrays) if arrays else empty, bad
