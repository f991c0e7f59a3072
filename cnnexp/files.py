"""Writing files so that a reader, a second process or a crash never sees half of one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """Write to the yielded temporary path next to `path`; when the block ends without error
    it is renamed into place (atomic on one file system), else removed. Several processes
    finishing the same work in one folder never leave a half-written or interleaved file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def user_cache_dir() -> Path:
    """cnnexp's folder in the user's cache (XDG_CACHE_HOME, else ~/.cache): what one process
    measured or built once and the next can reuse (a store template, a layout choice)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnexp"


def check_out_folder(path: Path, holds: str) -> None:
    """An output folder must be (or become) a folder we can write, checked before any work:
    a file on its path, or an unwritable parent, is bad input now, not after the training."""
    from cnnexp.errors import BadInput

    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"--out {path}: {probe} is a file, not a folder (pick a folder for "
                       f"{holds})")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"--out {path}: {probe} is not writable")
