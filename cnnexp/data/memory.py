"""Refuse a dataset that cannot fit in memory before building it: values the schema accepts
(data.num_samples=10**9, data.resize=1024 on 1,797 digits) would otherwise fill the machine
for minutes and end in an allocator traceback or the kernel's OOM killer."""

from __future__ import annotations

import os

from cnnexp.errors import BadInput

HEADROOM = 0.8  # of the memory available now: the model, the batches and Python need the rest
# Copies held at once while a bundle is built (the images, their resized or split copies)
COPIES = 3


def available_bytes() -> int | None:
    """MemAvailable (Linux), else free physical pages; None when neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_images_fit(count: int, channels: int, side: int, knob: str) -> None:
    """BadInput naming `knob` when `count` uint8 images of side x side would not fit."""
    need = COPIES * count * channels * side * side
    have = available_bytes()
    if have is not None and need > HEADROOM * have:
        raise BadInput(f"{knob}: {count:,} images of {channels}x{side}x{side} need about "
                       f"{need / 2**30:,.1f} GiB to build, and this machine has "
                       f"{have / 2**30:,.1f} GiB available: lower it")
