"""Run the benchmarks side by side and print/write the ratios.

    python benchmarks/run.py                 # all, on the CPU
    python benchmarks/run.py --device cuda   # the same on a GPU
    python benchmarks/run.py --only data_path,cli_startup
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALL = ["harness_overhead", "data_path", "tracking_overhead", "search_overhead", "cli_startup"]
KEYS = {"harness_overhead": ("ratio", "engine vs hand loop, images/s"),
        "data_path": ("ratio", "batched device aug vs torchvision DataLoader, images/s"),
        "tracking_overhead": ("extra_percent", "% extra wall time with MLflow"),
        "search_overhead": ("seconds_per_trial_overhead", "s of non-training time per trial"),
        "cli_startup": ("recipes_list_seconds", "s for `cnnexp recipes list`")}


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=",".join(ALL))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    from cnnexp.console import quiet_libraries

    quiet_libraries()
    results = {"machine": machine(), "device": args.device, "started": time.strftime("%F %T"),
               "benchmarks": []}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in ALL:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
        t0 = time.perf_counter()
        res = importlib.import_module(f"benchmarks.{name}").run(device=args.device)
        res["bench_seconds"] = round(time.perf_counter() - t0, 1)
        results["benchmarks"].append(res)
        key, label = KEYS[name]
        print(f"{name:20s} {key}={res[key]!s:>8}  target {res['target']:>7}  "
              f"{'met' if res['met'] else 'NOT met'}   ({label})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
