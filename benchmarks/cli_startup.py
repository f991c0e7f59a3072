"""5. CLI start-up: wall time of `cnnexp --help` and `cnnexp recipes list` in fresh processes,
interleaved, after one untimed call of each (the first call after an install compiles and
caches bytecode). Figure: the median of `recipes list`; met when both medians are < 1 s."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import interleaved, median, repeats_for, summarize, timed

COMMANDS = {"help": ["--help"], "recipes_list": ["recipes", "list"]}


def _cnnexp() -> list[str]:
    exe = Path(sys.executable).with_name("cnnexp")
    return [str(exe)] if exe.exists() else [shutil.which("cnnexp") or "cnnexp"]


def _call(args: list[str]) -> float:
    return timed(lambda: subprocess.run(_cnnexp() + args, check=True, capture_output=True))


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False) -> dict:
    repeats = repeats_for(repeats, quick)
    for args in COMMANDS.values():
        _call(args)
    res = interleaved({k: lambda a=a: _call(a) for k, a in COMMANDS.items()}, repeats)
    out = summarize("cli_startup", "recipes_list_seconds", res["recipes_list"], "< 1 s",
                    label="s for `cnnexp recipes list`",
                    sides={f"{k}_seconds": v for k, v in res.items()},
                    help_seconds=round(median(res["help"]), 3))
    out["met"] = out["met"] and out["help_seconds"] < 1.0
    return out
