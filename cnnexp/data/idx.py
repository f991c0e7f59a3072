"""IDX files (the MNIST family's format), gzipped or not, read with gzip + numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values. MNIST-family images are
type 0x08 (unsigned byte) with 3 dimensions (N, rows, cols), labels with 1 dimension (N).
Anything else — a missing, truncated or gzip-corrupt file, a wrong magic number — is a
BadInput naming the file and what is wrong with it."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from cnnexp.errors import BadInput

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:2] != GZIP_MAGIC:  # decided by content, not by the name
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadInput(f"{path}: not a readable gzip file ({exc})") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The unsigned-byte array in an IDX file with `ndim` dimensions (3 images, 1 labels)."""
    data = _raw_bytes(path)
    what = "images" if ndim == 3 else "labels"
    expected_magic = (UBYTE << 8) | ndim
    if len(data) < 4 + 4 * ndim:
        raise BadInput(f"{path}: truncated IDX file ({len(data)} bytes, shorter than its "
                       "header)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise BadInput(f"{path}: wrong magic number 0x{magic:08x} for IDX {what} (expected "
                       f"0x{expected_magic:08x}): is this the right file?")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    need = int(np.prod(shape))
    if len(data) - start < need:
        raise BadInput(f"{path}: truncated IDX {what} file (header says {shape[0]} {what} of "
                       f"shape {shape[1:] or ()}, the file holds {len(data) - start} of "
                       f"{need} bytes)")
    return np.frombuffer(data, dtype=np.uint8, count=need, offset=start).reshape(shape)


def read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) from two IDX files that must agree on N."""
    x, y = read_idx(images, 3), read_idx(labels, 1)
    if len(x) != len(y):
        raise BadInput(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    return x, y
