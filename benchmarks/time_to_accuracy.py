"""6. Time to accuracy: cnnexp as users run it vs a minimal hand-written script, Fashion-MNIST.

Both sides train the same model (cnnexp's small_cnn from the `fashion_mnist` recipe; the
script's hand-written copy is checked to have the same layers and initial weights), with
the same hyperparameters (read from the composed recipe and passed to the script: SGD with
Nesterov momentum, weight decay, one-cycle schedule, batch size, label smoothing, flip and
translate), on the same data (Fashion-MNIST's IDX files from Debian's folder, the same
seeded train/val split, evaluated on the official 10,000-image test set):

- cnnexp: a fresh `cnnexp train fashion_mnist OVERRIDES --test --json` process with MLflow
  tracking on, into a temporary store (created by an untimed warm-up run, as a user's store
  already exists);
- plain: a fresh `python benchmarks/plain_fashion_mnist.py ...` process (torch + numpy only).

Figure: wall seconds from spawning the process to its exit, right after it prints the final
test accuracy (interpreter start, imports, data loading, training, per-epoch validation and
the test evaluation all included); the median over interleaved repeats of the per-repeat
ratio cnnexp / plain, target <= 1.0. Both test accuracies are reported and must agree within
noise (2 combined binomial standard errors on the test set), else a warning says the ratio is
not a time to the same accuracy. cnnexp tests the best epoch by validation accuracy, the
script its last epoch (the last one under a one-cycle schedule, as a rule). `cnnexp train`
draws its review figures in a detached process after it exits; the benchmark waits for that
process before starting the next timed one (else the figures would be charged to whichever
side runs next) and reports its seconds apart (`cnnexp_background_figures_seconds`).

Default budget: 5,000 training images, 2 epochs (one process ~55 s, most of it evaluation:
6,000 validation images per epoch and the 10,000 test images; a repeat ~2 min on two quiet
CPU cores, 5 repeats ~11 min). --quick: 1,000 images, 1 epoch, 2 repeats. --full: all
54,000 training images at the recipe's 5 epochs (~10 min a process: ~1.7 h for 5 repeats).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    interleaved,
    median,
    paired_ratios,
    repeats_for,
    skipped,
    summarize,
    temp_store,
)

HERE = Path(__file__).resolve().parent
RECIPE = "fashion_mnist"
DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
TARGET = "<= 1.0"
SIZES = {"default": (5000, 2), "quick": (1000, 1)}  # training images, epochs


def dataset_files(root: Path) -> list[Path] | None:
    """The four IDX files (gzipped or not) in `root`, or None when one is missing."""
    found = [next((p for p in (root / f, root / f"{f}.gz") if p.is_file()), None) for f in FILES]
    return None if None in found else found  # type: ignore[return-value]


def unsupported(recipe: Any) -> list[str]:
    """Recipe settings the plain script does not implement (it would train something else)."""
    a, o, r, g = recipe.arch, recipe.opt, recipe.reg, recipe.aug
    checks = {"arch.model": (a.model, "small_cnn"), "arch.norm": (a.norm, "batch"),
              "arch.activation": (a.activation, "relu"), "arch.init": (a.init, "kaiming"),
              "opt.optimizer": (o.optimizer, "sgd"), "opt.schedule": (o.schedule, "onecycle"),
              "opt.warmup_epochs": (o.warmup_epochs, 0), "opt.grad_clip": (o.grad_clip, None),
              "reg.dropout": (r.dropout, 0), "reg.l1": (r.l1, 0), "reg.ema": (r.ema, None),
              "reg.patience": (r.patience, None), "aug.scale": (g.scale, None),
              "aug.rotation": (g.rotation, 0), "aug.color_jitter": (g.color_jitter, 0),
              "aug.cutout": (g.cutout, 0), "aug.mixup": (g.mixup, 0), "aug.cutmix": (g.cutmix, 0),
              "aug.tta": (g.tta, False), "data.resize": (recipe.data.resize, None)}
    return [f"{k}={have!r}" for k, (have, want) in checks.items() if have != want]


def eval_batch(recipe: Any, device: str) -> int:
    """The evaluation batch cnnexp uses for this recipe on `device` (train.eval_batch_size,
    auto: sized to the CPU's caches): the script evaluates in the same batches, so the
    comparison is of the tools' overhead, not of this choice (measured apart in
    docs/performance.md)."""
    import torch

    from cnnexp.engine.eval_batch import eval_batch_size
    from cnnexp.models import ModelSpec, build_model

    size = 28
    model = build_model(recipe, ModelSpec(1, 10, size))
    return eval_batch_size(recipe.train.eval_batch_size, model, torch.zeros(1, 1, size, size),
                           torch.device(device))


def plain_args(recipe: Any, root: Path, subset: int | None, device: str) -> list[str]:
    """The script's flags from the composed recipe: the same hyperparameters by construction."""
    o, t = recipe.opt, recipe.train
    return ["--root", str(root), "--device", device, "--epochs", str(t.epochs),
            *(["--subset", str(subset)] if subset else []),
            "--batch-size", str(t.batch_size),
            "--eval-batch-size", str(eval_batch(recipe, device)),
            "--lr", repr(o.lr), "--momentum", repr(o.momentum),
            "--nesterov" if o.nesterov else "--no-nesterov",
            "--weight-decay", repr(o.weight_decay),
            "--label-smoothing", repr(recipe.reg.label_smoothing),
            "--flip" if recipe.aug.flip else "--no-flip", "--translate", str(recipe.aug.translate),
            "--width", str(recipe.arch.width), "--val-fraction", repr(recipe.data.val_fraction),
            "--split-seed", str(recipe.data.split_seed), "--seed", str(t.seed)]


def same_model(recipe: Any) -> bool:
    """The script's small_cnn has cnnexp's layers (state-dict keys and shapes) and, from the
    same seed, the same initial weights."""
    import torch

    from benchmarks.plain_fashion_mnist import small_cnn
    from cnnexp.models import ModelSpec, build_model

    ours = build_model(recipe, ModelSpec(1, 10, 28)).state_dict()
    torch.manual_seed(recipe.train.seed)
    theirs = small_cnn(recipe.arch.width).state_dict()
    if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
        raise RuntimeError("benchmarks/plain_fashion_mnist.py no longer builds cnnexp's "
                           "small_cnn (layers differ): update the script")
    return all(torch.equal(ours[k], theirs[k]) for k in ours)


def cnnexp_exe() -> str:
    exe = Path(sys.executable).with_name("cnnexp")
    return str(exe) if exe.exists() else shutil.which("cnnexp") or "cnnexp"


def timed_json(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds from spawn to exit, and the JSON object the process printed last."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    text = proc.stdout.strip()
    try:
        return wall, json.loads(text)
    except json.JSONDecodeError:  # progress lines before the object
        return wall, json.loads(text.splitlines()[-1])


def figure_drawers() -> list[int]:
    """Pids of cnnexp's detached figure processes (`python -m cnnexp.diagnose.figures RUN`,
    started by `cnnexp train` after it prints its result); Linux /proc, else none seen."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"cnnexp.diagnose.figures" in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:  # gone meanwhile
            continue
    return pids


def wait_for_drawers(timeout: float = 120.0) -> float:
    """Seconds until the figures a finished `cnnexp train` draws in the background are done:
    the user does not wait for them, but the next timed process must not share the CPU with
    them (that would charge cnnexp's figures to whichever side runs next)."""
    t0 = time.perf_counter()
    while figure_drawers() and time.perf_counter() - t0 < timeout:
        time.sleep(0.1)
    return time.perf_counter() - t0


def run(device: str = "cpu", repeats: int | None = None, quick: bool = False,
        full: bool = False) -> dict[str, Any]:
    from cnnexp.recipe import load_recipe

    repeats = repeats_for(repeats, quick)
    base = load_recipe(RECIPE)
    root = Path(base.data.root).expanduser() if base.data.root else Path(DEBIAN_ROOT)
    files = dataset_files(root)
    if files is None:
        return skipped("time_to_accuracy", f"Fashion-MNIST IDX files not found in {root} "
                       "(Debian: apt-get install dataset-fashion-mnist)", TARGET)
    subset, epochs = (None, base.train.epochs) if full else SIZES["quick" if quick else "default"]
    # flip TTA is an evaluation choice the plain script does not make: both test one view
    overrides = [*([f"data.subset={subset}"] if subset else []), f"train.epochs={epochs}",
                 "aug.tta=false"]
    recipe = load_recipe(RECIPE, overrides)
    if bad := unsupported(recipe):
        raise RuntimeError(f"the plain script cannot reproduce recipe {RECIPE}: {', '.join(bad)}")
    init_equal = same_model(recipe)
    ours = [cnnexp_exe(), "train", RECIPE, *overrides, "--device", device, "--test", "--json"]
    plain = [sys.executable, str(HERE / "plain_fashion_mnist.py"),
             *plain_args(recipe, root, subset, device)]
    out: dict[str, list] = {"cnnexp": [], "plain": []}
    drawing: list[float] = []

    def side(name: str, cmd: list[str]) -> float:
        wall, res = timed_json(cmd)
        out[name].append(res)
        if name == "cnnexp":
            drawing.append(wait_for_drawers())
        return wall

    with temp_store():
        for f in files:
            f.read_bytes()  # into the page cache: no side pays the first disk read
        # the store and experiment exist before timing, as for a user's second run
        timed_json([cnnexp_exe(), "train", RECIPE, "data.subset=256", "train.epochs=1",
                    "--device", device, "--json"])
        wait_for_drawers()
        walls = interleaved({"cnnexp": lambda: side("cnnexp", ours),
                             "plain": lambda: side("plain", plain)}, repeats)
    res = _result(walls, out, device, subset, epochs, init_equal, ours, plain)
    res["cnnexp_background_figures_seconds"] = round(median(drawing), 2)
    return res


def _result(walls: dict[str, list[float]], out: dict[str, list], device: str,
            subset: int | None, epochs: int, init_equal: bool, ours: list[str],
            plain: list[str]) -> dict[str, Any]:
    from cnnexp.noise import noise_band

    ratios = paired_ratios(walls["cnnexp"], walls["plain"])
    acc_c = median([r["test"]["test_acc"] for r in out["cnnexp"]])
    acc_p = median([r["test_acc"] for r in out["plain"]])
    n_test = out["plain"][0]["test_images"]
    band = noise_band(acc_c, acc_p, n_test)
    agree = abs(acc_c - acc_p) <= band
    res = summarize(
        "time_to_accuracy", "ratio", ratios, TARGET, label="cnnexp / plain script, wall s",
        sides={"cnnexp_seconds": walls["cnnexp"], "plain_seconds": walls["plain"]},
        effect=abs(median(ratios) - 1), device=device, train_images=subset or "all",
        epochs=epochs, test_acc_cnnexp=round(acc_c, 4), test_acc_plain=round(acc_p, 4),
        test_images=n_test, accuracy_noise_band=round(band, 4), accuracies_agree=agree,
        accuracy_note=(f"test accuracies {acc_c:.4f} (cnnexp) and {acc_p:.4f} (plain) "
                       f"{'agree' if agree else 'DIFFER'} within noise (±{band:.4f}: 2 "
                       f"combined binomial SEs on {n_test} test images)"),
        same_initial_weights=init_equal,
        cnnexp_fit_seconds=round(median([r["seconds"] for r in out["cnnexp"]]), 2),
        plain_train_seconds=round(median([r["train_seconds"] for r in out["plain"]]), 2),
        commands={"cnnexp": " ".join(ours[1:]),
                  "plain": " ".join([Path(plain[1]).name, *plain[2:]])})
    res["cnnexp_outside_fit_seconds"] = round(median(walls["cnnexp"]) - res["cnnexp_fit_seconds"],
                                              2)
    res["plain_outside_train_seconds"] = round(
        median(walls["plain"]) - res["plain_train_seconds"], 2)
    if not agree:
        res["warnings"].append(f"{res['accuracy_note']}: the ratio is not a time to the same "
                               "accuracy")
    return res

