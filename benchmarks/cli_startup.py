"""5. CLI start-up: wall time of `cnnexp --help` and `cnnexp recipes list` (fresh processes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import median, timed


def _cnnexp() -> list[str]:
    exe = Path(sys.executable).with_name("cnnexp")
    return [str(exe)] if exe.exists() else [shutil.which("cnnexp") or "cnnexp"]


def run(device: str = "cpu", repeats: int = 5) -> dict:
    out: dict = {"name": "cli_startup", "target": "< 1 s"}
    for label, args in {"help": ["--help"], "recipes_list": ["recipes", "list"]}.items():
        times = [timed(lambda a=args: subprocess.run(_cnnexp() + a, check=True,
                                                     capture_output=True))
                 for _ in range(repeats)]
        out[f"{label}_seconds"] = round(median(times), 3)
    out["met"] = max(out["help_seconds"], out["recipes_list_seconds"]) < 1.0
    return out
