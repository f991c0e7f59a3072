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
