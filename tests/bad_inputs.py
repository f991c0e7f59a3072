"""The catalogue of bad inputs: each is run by tests/test_bad_inputs.py (exit code 2, one
line naming the problem, nothing stored) and listed in docs/reliability.md.

    python -m tests.bad_inputs > docs/reliability.md     # regenerate the doc from real runs
"""

from __future__ import annotations

from dataclasses import dataclass, field

CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    args: tuple[str, ...]
    expect: str  # fragment of the one-line message
    files: dict[str, str | bytes] = field(default_factory=dict)


def _imagefolder(extra: dict[str, str | bytes]) -> dict[str, str | bytes]:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    good = buf.getvalue()
    return {"imgs/a/1.png": good, "imgs/a/2.png": good, "imgs/b/1.png": good,
            "imgs/b/2.png": good, **extra}


def _truncated_jpeg() -> bytes:
    """A JPEG cut in half: Pillow opens and verifies it; only decoding finds the missing data."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _torch_saved(obj: object = None) -> bytes:
    """torch.save bytes of `obj` (None: a plain tensor)."""
    from io import BytesIO

    import torch

    buf = BytesIO()
    torch.save(torch.zeros(3) if obj is None else obj, buf)
    return buf.getvalue()


# nine levels of ten aliases each: 10**9 values once expanded, 300 bytes on disk
ALIAS_BOMB = "defaults: {data: digits}\nsearch:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9))


CASES: list[Case] = [
    Case("yaml-syntax", "malformed YAML (with file and line)", ("train", "bad.yaml"),
         "malformed YAML in bad.yaml:2", {"bad.yaml": "defaults: {data: digits}\ntrain: {epochs: 2]\nopt: {}\n"}),
    Case("yaml-not-mapping", "YAML whose top level is a list", ("train", "list.yaml"),
         "expected a mapping at the top level", {"list.yaml": "- 1\n- 2\n"}),
    Case("yaml-python-tag", "YAML trying to run code", ("train", "evil.yaml"),
         "malformed YAML", {"evil.yaml": "name: !!python/object/apply:os.system [ls]\n"}),
    Case("yaml-binary", "a binary file as recipe", ("train", "blob.yaml"),
         "malformed YAML", {"blob.yaml": b"\xff\xfe\x00\x01"}),
    Case("yaml-alias-bomb", "YAML alias bomb (billion laughs) in a recipe", ("train", "bomb.yaml"),
         "values, each alias (*name) counted as a copy", {"bomb.yaml": ALIAS_BOMB}),
    Case("yaml-alias-bomb-show", "alias bomb under `recipes show`", ("recipes", "show", "bomb.yaml"),
         "values, each alias (*name) counted as a copy", {"bomb.yaml": ALIAS_BOMB}),
    Case("yaml-alias-bomb-in-train", "alias bomb referenced as train.epochs",
         ("train", "b.yaml"), "values, each alias (*name) counted as a copy",
         {"b.yaml": ALIAS_BOMB + "train: {epochs: *l8}\n"}),
    Case("yaml-recursive-alias", "an alias inside its own anchor (circular)",
         ("recipes", "show", "search=&a {x: *a}"), "used inside its own anchor"),
    Case("yaml-too-large", "a recipe file over the size limit", ("train", "huge.yaml"),
         "huge.yaml is larger than 128 KiB",
         {"huge.yaml": "defaults: {data: digits}\n" + "# padding\n" * 20_000}),
    Case("yaml-too-deep", "nesting deeper than any recipe needs", ("train", "deep.yaml"),
         "nested more than 32 levels deep", {"deep.yaml": "search: " + "[" * 3000 + "]" * 3000}),
    Case("yaml-duplicate-key", "a key given twice in a recipe (the last would silently win)",
         ("train", "dup.yaml"), "dup.yaml:3: duplicate key 'opt' (first on line 2)",
         {"dup.yaml": "defaults: {data: digits}\nopt: {lr: 0.1}\nopt: {lr: 0.5}\n"}),
    Case("yaml-duplicate-override-key", "a key given twice inside an override's value",
         ("train", "opt={lr: 0.1, lr: 0.5}"), "duplicate key 'lr'"),
    Case("yaml-non-text-key", "a number as a defaults group", ("train", "k.yaml"),
         "k.yaml:1: key '1' is not text", {"k.yaml": "defaults: {1: digits}\n"}),
    Case("global-non-text-key", "a number as a key in a component's _global_",
         ("train", "reg=odd"), "error: recipes/reg/odd.yaml:1: key '1' is not text",
         {"recipes/reg/odd.yaml": "_global_: {1: 2}\n"}),
    Case("recipe-empty", "an empty recipe file (an empty spec is refused too)", ("train", "e.yaml"),
         "recipe 'e.yaml' is empty", {"e.yaml": "# nothing yet\n"}),
    Case("recipe-null", "a recipe file holding only null", ("train", "n.yaml"),
         "recipe 'n.yaml' is empty", {"n.yaml": "null\n"}),
    Case("recipe-is-folder", "a folder named like a recipe file", ("train", "x.yaml"),
         "x.yaml is a folder, not a recipe file", {"x.yaml/.keep": ""}),
    Case("recipe-path-with-equals", "a recipe path with '=' that does not exist",
         ("recipes", "show", "r/a=b.yaml"), "looks like a recipe path, not an override"),
    Case("override-defaults", "setting defaults.GROUP instead of swapping the group",
         ("recipes", "show", "defaults.arch=vgg"), "defaults cannot be set; swap a component "
         "with group=name, e.g. arch=vgg"),
    Case("defaults-not-mapping", "defaults given as a list", ("train", "d.yaml"),
         "'defaults' must map groups", {"d.yaml": "defaults: [digits]\n"}),
    Case("defaults-unknown-group", "defaults naming an unknown group", ("train", "g.yaml"),
         "unknown defaults group 'optim' (did you mean 'opt'?)",
         {"g.yaml": "defaults: {data: digits, optim: sgd}\n"}),
    Case("recipe-missing-file", "recipe path that does not exist", ("train", "nope/x.yaml"),
         "recipe file not found: nope/x.yaml"),
    Case("recipe-unknown-name", "unknown experiment name", ("train", "digts"),
         "unknown experiment recipe 'digts' (did you mean 'digits'?)"),
    Case("component-unknown", "unknown component", ("train", "arch=resnet2"),
         "unknown arch component 'resnet2' (did you mean"),
    Case("component-traversal", "path traversal in a component name",
         ("train", "arch=../../etc/passwd"), "recipe file not found"),
    Case("name-traversal", "dots in a component name", ("train", "opt=..sgd"),
         "invalid opt name '..sgd'"),
    Case("key-unknown", "mistyped key", ("train", "opt.lrate=0.1"),
         "unknown key 'opt.lrate' (did you mean 'opt.lr'?)"),
    Case("key-unknown-section", "unknown top-level section", ("train", "trian.epochs=2"),
         "unknown key 'trian' (did you mean 'train'"),
    Case("key-not-section", "setting below a scalar", ("train", "opt.lr.max=1"),
         "'opt.lr' is not a section"),
    Case("override-syntax", "override without '='", ("train", "digits", "opt.lr"),
         "must look like key=value"),
    Case("override-bad-key", "override with an invalid key", ("train", "opt..lr=1"),
         "is not a dotted key"),
    Case("type-string-for-float", "wrong type", ("train", "opt.lr=fast"),
         "invalid value for 'opt.lr'"),
    Case("type-list-for-int", "list where an int belongs", ("train", "train.epochs=[1,2]"),
         "invalid value for 'train.epochs'"),
    Case("range-negative-lr", "negative learning rate", ("train", "opt.lr=-0.1"),
         "invalid value for 'opt.lr': Input should be greater than 0"),
    Case("range-zero-batch", "zero batch size", ("train", "train.batch_size=0"),
         "invalid value for 'train.batch_size'"),
    Case("range-zero-epochs", "zero epochs", ("train", "train.epochs=0"),
         "invalid value for 'train.epochs'"),
    Case("range-val-fraction", "validation fraction of 1", ("train", "data.val_fraction=1"),
         "invalid value for 'data.val_fraction'"),
    Case("range-infinite-lr", "infinite learning rate", ("train", "opt.lr=inf"),
         "invalid value for 'opt.lr': Input should be a finite number"),
    Case("range-seed-huge", "--seed above 2**63", ("train", "--seed", "99999999999999999999"),
         "invalid value for 'train.seed': Input should be less than or equal to 4294967295"),
    Case("range-split-seed-huge", "data.split_seed above 2**32",
         ("train", "data.split_seed=18446744073709551616"),
         "invalid value for 'data.split_seed': Input should be less than or equal to 4294967295"),
    Case("range-betas", "Adam betas outside [0, 1)", ("train", "opt=adam", "opt.betas=[2,-5]"),
         "opt.betas must be two decay rates in [0, 1), e.g. [0.9, 0.999]"),
    Case("range-vgg-stages", "negative and zero convs per VGG stage",
         ("train", "arch=vgg", "arch.stages=[-1,0]"), "arch.stages counts convs per stage"),
    Case("name-empty", "an empty recipe name", ("train", "n.yaml"),
         "invalid value for 'name': Value error, a name must be 1 to 128 printable characters",
         {"n.yaml": "name: ''\ndefaults: {data: digits}\n"}),
    Case("name-too-long", "a recipe name over the 128-character limit", ("train", "name=" + "x" * 129),
         "a name must be 1 to 128 printable characters (got 'xxxx"),
    Case("choice-unknown", "unknown choice for a literal field", ("train", "arch.norm=bn"),
         "invalid value for 'arch.norm'"),
    Case("inverted-scale", "inverted augmentation range", ("train", "aug.scale=[1.2,0.8]"),
         "aug.scale must be [low, high]"),
    Case("conflict-nesterov", "conflicting overrides: nesterov with adam",
         ("train", "opt=adam", "opt.nesterov=true"), "opt.nesterov needs optimizer sgd"),
    Case("resnet-depth", "unsupported ResNet depth", ("train", "arch=resnet20", "arch.depth=21"),
         "resnet depth 21 not supported"),
    Case("zoo-unknown", "unknown torchvision model", ("train", "arch=zoo", "arch.zoo_model=resnet19"),
         "unknown torchvision model 'resnet19'"),
    Case("zoo-weights-missing", "missing local weights file",
         ("train", "arch=zoo", "arch.weights_path=w.pt"), "arch.weights_path not found: w.pt"),
    Case("zoo-weights-corrupt", "corrupt weights file",
         ("train", "arch=zoo", "arch.weights_path=w.pt"), "cannot load weights from w.pt",
         {"w.pt": b"not a checkpoint"}),
    Case("zoo-weights-tensor", "a weights file holding one tensor, not a state_dict",
         ("train", "arch=zoo", "arch.weights_path=t.pt"),
         "t.pt is not a state_dict of tensors (it holds a Tensor)", {"t.pt": _torch_saved()}),
    Case("zoo-weights-list", "a weights file holding a list",
         ("train", "arch=zoo", "arch.weights_path=l.pt"),
         "l.pt is not a state_dict of tensors (it holds a list)", {"l.pt": _torch_saved([1, 2])}),
    Case("zoo-vit-small-images", "a ViT (224x224 only) on 8x8 images",
         ("train", "arch=zoo", "arch.zoo_model=vit_b_16"),
         "arch.zoo_model 'vit_b_16' cannot run on 8x8 images (Wrong image height! Expected 224"),
    Case("batchnorm-batch-of-one", "BatchNorm with train.batch_size=1 on 1x1 feature maps",
         ("train", "arch=vgg", "train.batch_size=1"),
         "train.batch_size=1 cannot train arch 'vgg': its BatchNorm layer"),
    Case("device-unknown", "unknown device", ("train", "--device", "tpu"),
         "unknown device 'tpu' (valid: auto, cpu, cuda, cuda:N, mps)"),
    Case("device-cuda-missing", "CUDA asked for on a machine without it",
         ("train", "--device", "cuda:0"), "CUDA is not available"),
    Case("data-root-missing", "torchvision dataset root missing",
         ("train", "cifar10_resnet20", "data.root=nowhere"), "data.root 'nowhere' does not exist"),
    Case("data-not-downloaded", "torchvision dataset not in its root",
         ("train", "cifar10_resnet20", "data.root=."), "cifar10 not found under '.'"),
    Case("imagefolder-missing", "image folder that does not exist",
         ("train", "data=imagefolder", "data.path=photos"), "data.path 'photos' is not a folder"),
    Case("imagefolder-empty", "empty image folder", ("train", "data=imagefolder", "data.path=e"),
         "holds no images", {"e/a/.keep": "", "e/b/.keep": ""}),
    Case("imagefolder-corrupt", "corrupt image", ("train", "data=imagefolder", "data.path=imgs"),
         "unreadable image imgs/a/bad.png", _imagefolder({"imgs/a/bad.png": CORRUPT_PNG})),
    Case("imagefolder-truncated-jpeg", "truncated JPEG (verifies, fails only when decoded)",
         ("train", "data=imagefolder", "data.path=imgs"),
         "unreadable image imgs/a/cut.jpg: image file is truncated",
         _imagefolder({"imgs/a/cut.jpg": _truncated_jpeg()})),
    Case("imagefolder-decompression-bomb", "PNG whose header claims 30000x30000 pixels",
         ("train", "data=imagefolder", "data.path=imgs"),
         "image imgs/b/huge.png is too large: Image size (900000000 pixels) exceeds limit",
         _imagefolder({"imgs/b/huge.png": _png_claiming(30000, 30000)})),
    Case("imagefolder-empty-class", "one class folder without images",
         ("train", "data=imagefolder", "data.path=imgs"),
         "class folder 'c' holds no images", _imagefolder({"imgs/c/notes.txt": "todo"})),
    Case("shapes-too-many-classes", "more shape classes than exist",
         ("train", "shapes", "data.num_classes=500"), "shapes supports at most 60 classes"),
    Case("resume-unknown-run", "resume of a run that does not exist",
         ("train", "--resume", "feedc0de"), "no run 'feedc0de'"),
    Case("resume-with-overrides", "resume with a recipe override",
         ("train", "opt.lr=1", "--resume", "feedc0de"), "--resume takes no recipe"),
    Case("show-unknown", "`recipes show` of an unknown recipe", ("recipes", "show", "shape"),
         "unknown experiment recipe 'shape' (did you mean 'shapes'?)"),
    # search, ablate, sanity: everything is checked before a study or run exists
    Case("search-inverted-range", "inverted search range",
         ("search", "search.space.opt.lr={low: 1.0e-1, high: 1.0e-3, log: true}"),
         "search.space.opt.lr: inverted range, low=0.1 > high=0.001"),
    Case("search-log-nonpositive", "log-scale search range starting at 0",
         ("search", "search.space.opt.lr={low: 0.0, high: 1.0, log: true}"),
         "log: true needs low > 0"),
    Case("search-unknown-param", "unknown search parameter path",
         ("search", "search.space.opt.lrate={low: 1.0e-3, high: 1.0e-1}"),
         "unknown search parameter 'opt.lrate' (did you mean 'opt.lr'"),
    Case("search-unknown-stage", "unknown search stage", ("search", "--stages", "corse"),
         "unknown stage 'corse' (did you mean 'coarse'?)"),
    Case("search-unknown-sampler", "unknown sampler",
         ("search", "search.stages.coarse.sampler=grid"),
         "unknown sampler 'grid' (valid: qmc, random, tpe)"),
    Case("search-storage-unreachable", "unreachable storage server (password redacted)",
         ("search", "--storage", "postgresql://cnnexp:hunter2@127.0.0.1:1/optuna"),
         "cannot open --storage postgresql://cnnexp:***@127.0.0.1:1/optuna"),
    Case("ablate-empty-spec", "empty ablation spec", ("ablate", "--spec", "empty.yaml"),
         "ablation spec 'empty.yaml' is empty", {"empty.yaml": ""}),
    Case("ablate-no-arms", "ablation spec without arms", ("ablate", "--spec", "noarms.yaml"),
         "needs at least one arm", {"noarms.yaml": "baseline: digits\narms: {}\n"}),
    Case("ablate-duplicate-arm", "two ablation arms with one label (one would vanish)",
         ("ablate", "--spec", "twice.yaml"), "twice.yaml:4: duplicate key 'x' (first on line 3)",
         {"twice.yaml": "baseline: digits\narms:\n  x: {opt.lr: 0.1}\n  x: {opt.lr: 0.2}\n"}),
    Case("ablate-alias-bomb", "alias bomb in an ablation spec", ("ablate", "--spec", "bomb.yaml"),
         "values, each alias (*name) counted as a copy",
         {"bomb.yaml": ALIAS_BOMB.replace("defaults: {data: digits}\nsearch:", "overrides:")}),
    Case("ablate-unknown-arm-key", "mistyped key in an ablation arm",
         ("ablate", "--spec", "arms.yaml"),
         "arm 'no wd': unknown key 'opt.weight_decy' (did you mean 'opt.weight_decay'?)",
         {"arms.yaml": "baseline: digits\narms:\n  'no wd': {opt.weight_decy: 0}\n"}),
    Case("ablate-seeds-zero", "zero seeds", ("ablate", "--seeds", "0"),
         "--seeds must be at least 1"),
    Case("sanity-unknown-check", "unknown sanity check", ("sanity", "--checks", "overfitt"),
         "unknown check 'overfitt' (did you mean 'overfit'?)"),
    Case("sanity-tiny-too-large", "--tiny larger than the training set",
         ("sanity", "--checks", "overfit", "--tiny", "100000"),
         "--tiny 100000: dataset 'digits' has only"),
]


def _markdown() -> str:
    import tempfile
    from pathlib import Path

    from tests.conftest import run_case

    lines = ["# Reliability: bad input", "",
             "Every row below is a test (`tests/test_bad_inputs.py` runs each case against a "
             "fresh MLflow store and checks: exit code 2, one line on stderr naming the problem, "
             "nothing on stdout, no run stored). The messages are captured from real runs by "
             "`python -m tests.bad_inputs`.", "",
             "| # | bad input | command | exit | message |", "|---|---|---|---|---|"]
    for i, case in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as tmp:
            res = run_case(case, Path(tmp))
        message = res.stderr.strip().replace("|", "\\|")
        command = " ".join(["cnnexp", *case.args]).replace("|", "\\|")
        lines.append(f"| {i} | {case.what} (`{case.id}`) | `{command}` | {res.exit_code} | "
                     f"{message} |")
    lines += ["", "Cases that need more than files to set up are tests of their own:", "",
              *[f"- {what} (`{test}`)" for test, what in OTHER_TESTS]]
    return "\n".join(lines) + "\n"


# bad input tested outside the table (a network to take away, properties over many inputs)
OTHER_TESTS = [
    ("tests/test_bad_inputs.py::test_download_offline_is_bad_input",
     "`data.download=true` without a network: exit 2, one line, no run"),
    ("tests/data/test_data.py::test_download_offline_is_bad_input",
     "the same for CIFAR-10 and SVHN when building the data"),
    ("tests/test_recipe.py::test_alias_bomb_is_refused_before_it_expands",
     "10**12 values of aliases refused in under a second"),
    ("tests/test_recipe.py::test_size_limit_reads_no_more_than_it_needs", "a 50 MB recipe"),
    ("tests/test_recipe_fuzz.py", "random overrides, recipe files, `defaults` and `_global_` "
     "keys: a recipe or one line of bad input, never a traceback"),
]


if __name__ == "__main__":
    print(_markdown(), end="")
