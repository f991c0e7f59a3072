"""Run the benchmarks side by side and print one table (median, spread, target, warnings).

    python benchmarks/run.py                      # all, on the CPU, 5 interleaved repeats
    python benchmarks/run.py --quick              # smoke run: small sizes, 2 repeats
    python benchmarks/run.py --device cuda        # the same on a GPU
    python benchmarks/run.py --only data_path,cli_startup --repeats 9
    python benchmarks/run.py --only time_to_accuracy,search_efficiency --full

Every result (and benchmarks/results/latest.json) carries the load average before/after, the
CPU time other processes took meanwhile, and warnings when the machine was busy or the spread
is as large as the effect measured.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import LoadMonitor  # noqa: E402

ALL = ["harness_overhead", "data_path", "tracking_overhead", "search_overhead", "cli_startup",
       "cpu_epoch", "time_to_accuracy", "search_efficiency", "search_vs_peers"]
KEYS = {"harness_overhead": ("ratio", "engine / hand loop, images/s"),
        "data_path": ("ratio", "batched device aug / torchvision DataLoader, images/s"),
        "tracking_overhead": ("extra_percent", "% extra wall time with MLflow (digits)"),
        "search_overhead": ("seconds_per_trial_overhead", "s of non-training time per trial"),
        "cli_startup": ("recipes_list_seconds", "s for `cnnexp recipes list`"),
        "cpu_epoch": ("speedup", "epoch wall, eval batch 1024 / auto (CPU)"),
        "time_to_accuracy": ("ratio", "cnnexp / plain script, wall s to test acc"),
        "search_efficiency": ("compute_fraction",
                              "staged / random search epochs to random's best"),
        "search_vs_peers": ("compute_percent",
                            "% of random's compute for cnnexp's default to reach its best")}
COLUMNS = ("benchmark", "figure", "median", "spread (min-max; IQR)", "target", "met",
           "warnings")


def machine() -> dict[str, Any]:
    import os

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def call(name: str, **options: Any) -> dict[str, Any]:
    """The benchmark's run(), given only the options it takes (the older ones have no `full`)."""
    fn = importlib.import_module(f"benchmarks.{name}").run
    accepted = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in options.items() if k in accepted})


def fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}" if math.isfinite(x) else str(x)
    return "" if x is None else str(x)


def row(res: dict[str, Any]) -> tuple[list[str], list[str]]:
    """One table row's cells (all but warnings) and its warnings."""
    name = res["name"]
    label = KEYS.get(name, ("", ""))[1]
    if res.get("skipped"):
        return [name, label, "-", "-", res["target"], "skipped"], [res["skipped"]]
    s = res.get("spread", {})
    spread = (f"{fmt(s.get('min'))}-{fmt(s.get('max'))}; {fmt(s.get('q1'))}-{fmt(s.get('q3'))}"
              if s.get("n", 0) >= 2 else "-")
    return ([name, label, fmt(res["value"]), spread, res["target"],
             "met" if res["met"] else "NOT met"], list(res.get("warnings", [])))


def table(results: list[dict[str, Any]]) -> str:
    """Plain-text table; each warning after a row's first goes on a continuation line."""
    lines: list[list[str]] = [list(COLUMNS)]
    for res in results:
        cells, warnings = row(res)
        lines.append([*cells, warnings[0] if warnings else "-"])
        lines += [[""] * len(cells) + [w] for w in warnings[1:]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
           for line in lines]
    out.insert(1, "-" * min(160, max(len(x) for x in out)))
    return "\n".join(out)


def run_one(name: str, options: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    with LoadMonitor() as monitor:
        res = call(name, **options)
    res["bench_seconds"] = round(time.perf_counter() - t0, 1)
    res["machine_load"] = monitor.info
    res["cpu_count"] = monitor.info["cpu_count"]
    res["warnings"] = monitor.warnings() + res.get("warnings", [])
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated benchmarks")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats (default 5; 2 with --quick; search_efficiency: "
                             "search seeds, default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small sizes and 2 repeats (checks the plumbing only)")
    parser.add_argument("--full", action="store_true",
                        help="time_to_accuracy and search_efficiency on all of Fashion-MNIST at "
                             "the recipe's budget (hours on a CPU)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="search_vs_peers: search seeds run at once, one thread each")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    for name in names:
        if name not in ALL:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    from cnnexp.console import quiet_libraries

    quiet_libraries()
    options = {"device": args.device, "repeats": args.repeats, "quick": args.quick,
               "full": args.full, "jobs": args.jobs}
    results: dict[str, Any] = {"machine": machine(), "device": args.device,
                               "started": time.strftime("%F %T"), "options": options,
                               "benchmarks": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        res = run_one(name, options)
        results["benchmarks"].append(res)
        print(f"[{i}/{len(names)}] {name}: {fmt(res.get('value'))} (target {res['target']}, "
              f"{res['bench_seconds']} s)", file=sys.stderr, flush=True)
        out.write_text(json.dumps(results, indent=2, default=str))  # kept if a later one fails
    print(table(results["benchmarks"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
