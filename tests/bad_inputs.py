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
    # environment for the command ({dir}: the case's folder); MLFLOW_TRACKING_URI is a fresh
    # SQLite store unless set here
    env: dict[str, str] = field(default_factory=dict)


def _png(side: int) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (side, side), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


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
    Case("union-eval-batch", "an eval batch size that is neither a positive number nor auto",
         ("train", "train.eval_batch_size=0"),
         "invalid value for 'train.eval_batch_size': Input should be greater than or equal to 1,"
         " or 'auto' (got 0)"),
    Case("union-channels-last", "a memory format that is neither true/false nor auto",
         ("train", "train.channels_last=maybe"),
         "invalid value for 'train.channels_last': Input should be a valid boolean"),
    Case("name-empty", "an empty recipe name", ("train", "n.yaml"),
         "invalid value for 'name': a name must be 1 to 128 printable characters",
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
    Case("search-zoo-choice", "a searched torchvision model name that does not exist",
         ("search", "arch=zoo", "search.space.arch.zoo_model={choices: [resnet18, bogus]}"),
         "search.space.arch.zoo_model: unknown torchvision model 'bogus'"),
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
    Case("memory-num-samples", "a synthetic dataset no machine can hold",
         ("train", "data=shapes", "data.num_samples=1000000000"),
         "data.num_samples=1000000000 at data.image_size=32: 1,000,000,000 images"),
    Case("memory-resize", "data.resize making the images too large to hold",
         ("train", "data=shapes", "data.num_samples=200000", "data.resize=1024"),
         "GiB to build, and this machine has"),
    Case("imagefolder-one-class", "only one class folder holds images",
         ("train", "data=imagefolder", "data.path=one"),
         "only class folder 'a' holds images; a classifier needs at least 2",
         {f"one/a/{i}.png": _png(8) for i in range(10)} | {"one/b/.keep": ""}),
    Case("imagefolder-one-pixel", "1-px-wide images with data.resize=null",
         ("train", "data=imagefolder", "data.path=tiny", "data.resize=null"),
         "1 px wide: set data.resize", {f"tiny/{c}/{i}.png": _png(1) for c in "ab" for i in range(4)}),
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
    Case("search-final-budget", "a final budget that is not a duration",
         ("search", "search.final_budget=soon"),
         "search.final_budget 'soon': give a duration with units, e.g. 90s, 30m, 1.5h or 1h30m"),
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
    Case("sanity-checks-empty", "`--checks` naming no check (ran nothing, said passed)",
         ("sanity", "--checks", ","), "--checks ',' names no check (valid: all, data"),
    Case("sanity-lr-range-inverted", "an LR sweep that falls, after a check that would run "
         "first", ("sanity", "--checks", "init-loss,lr-range", "--start-lr", "5", "--end-lr", "1"),
         "--start-lr 5 must be below --end-lr 1"),
    Case("sanity-lr-steps-zero", "an LR sweep of zero steps", ("sanity", "--lr-steps", "0"),
         "--lr-steps 0: the sweep needs at least 3 steps"),
    Case("sanity-zoo-small-images", "a model that cannot run on the data, under sanity",
         ("sanity", "arch=zoo", "arch.zoo_model=vit_b_16"),
         "arch.zoo_model 'vit_b_16' cannot run on 8x8 images"),
    Case("lr-find-inverted", "`lr-find` from a high LR down to a low one",
         ("lr-find", "--start-lr", "1", "--end-lr", "1e-3"), "--start-lr 1 must be below --end-lr"),
    Case("lr-find-zero-start", "`lr-find` starting at LR 0", ("lr-find", "--start-lr", "0"),
         "--start-lr 0: a learning rate must be a positive, finite number"),
    Case("lr-find-nan", "`lr-find` to a NaN LR", ("lr-find", "--end-lr", "nan"),
         "--end-lr nan: a learning rate must be a positive, finite number"),
    Case("lr-find-steps-zero", "`lr-find` of zero steps", ("lr-find", "--steps", "0"),
         "--steps 0: the sweep needs at least 3 steps"),
    Case("lr-find-steps-negative", "`lr-find` of -5 steps", ("lr-find", "--steps", "-5"),
         "--steps -5: the sweep needs at least 3 steps"),
    Case("ablate-batchnorm-batch-of-one", "an ablation arm that cannot train (BatchNorm, batch "
         "of one)", ("ablate", "--spec", "one.yaml"), "train.batch_size=1 cannot train arch 'vgg'",
         {"one.yaml": "baseline: digits\narms:\n  vgg: {arch: vgg, train.batch_size: 1}\n"}),
    Case("experiment-empty-train", "an empty --experiment", ("train", "--experiment", ""),
         "invalid --experiment '': a name must be 1 to 128 printable characters"),
    Case("experiment-too-long-sanity", "--experiment over MLflow's limits, under sanity",
         ("sanity", "--experiment", "e" * 600), "invalid --experiment 'eeee"),
    Case("experiment-too-long-lr-find", "--experiment over the limits, under lr-find",
         ("lr-find", "--experiment", "e" * 600), "invalid --experiment 'eeee"),
    Case("experiment-too-long-ablate", "--experiment over the limits, under ablate",
         ("ablate", "--experiment", "e" * 600), "invalid --experiment 'eeee"),
    Case("threshold-long-value", "a 600-character value is quoted back cut short",
         ("diagnose", "feedc0de", "--threshold", "gap=" + "x" * 600),
         "invalid threshold 'gap': Input should be a valid number"),
    Case("diagnose-short-prefix", "a run id prefix under 6 characters",
         ("diagnose", "feed"), "a prefix needs at least 6 characters of the run id (got 4)"),
    Case("ui-port-too-large", "`ui --port 99999`", ("ui", "--port", "99999"),
         "--port 99999: a port is a number from 1 to 65535"),
    Case("ui-port-negative", "`ui --port -1`", ("ui", "--port", "-1"),
         "--port -1: a port is a number from 1 to 65535"),
    Case("ui-host-invalid", "`ui --host 999.1.1.1`", ("ui", "--host", "999.1.1.1"),
         "--host 999.1.1.1: not a valid address"),
    # the tracking store itself (MLFLOW_TRACKING_URI): checked before any work, password hidden
    Case("store-unknown-scheme", "a tracking URI MLflow cannot use", ("train",),
         "tracking URI bogus://x: unknown scheme 'bogus'", env={"MLFLOW_TRACKING_URI": "bogus://x"}),
    Case("store-folder", "a folder as tracking URI (MLflow's file store, in maintenance mode)",
         ("train",), "use a database file instead, e.g. sqlite:///", env={"MLFLOW_TRACKING_URI": "runs"}),
    Case("store-file-uri", "a file:// tracking URI", ("train",),
         "tracking URI file:///tmp/runs: MLflow's folder store is in maintenance mode",
         env={"MLFLOW_TRACKING_URI": "file:///tmp/runs"}),
    Case("store-not-a-database", "a tracking URI pointing at random bytes", ("train",),
         "junk.db is not a SQLite database", {"junk.db": bytes(range(256)) * 16},
         env={"MLFLOW_TRACKING_URI": "sqlite:///{dir}/junk.db"}),
    Case("store-server-unreachable", "a tracking server that is down (password redacted)",
         ("diagnose", "feedc0de"), "cannot reach the tracking server http://u:***@127.0.0.1:9 "
         "within 5 s: Connection refused", env={"MLFLOW_TRACKING_URI": "http://u:hunter2@127.0.0.1:9"}),
    Case("store-database-unreachable", "a PostgreSQL store on a closed port (password in the "
         "query redacted)", ("train",), "cannot open the tracking store "
         "postgresql://u@127.0.0.1:1/mlflow?password=***: connection failed",
         env={"MLFLOW_TRACKING_URI": "postgresql://u@127.0.0.1:1/mlflow?password=hunter2"}),
    Case("store-password-with-at", "a tracking URI whose password holds '@'", ("train",),
         "its password holds '@': write it as %40",
         env={"MLFLOW_TRACKING_URI": "postgresql://u:pa@ss@127.0.0.1:1/mlflow"}),
]


def _markdown() -> str:
    import tempfile
    from pathlib import Path

    from tests.conftest import run_case

    lines = ["# Reliability: bad input", "",
             "Every row below is a test (`tests/test_bad_inputs.py` runs each case against a "
             "fresh MLflow store and checks: exit code 2, one line on stderr naming the problem, "
             "no run stored, and with `--json` exactly one object on stdout, "
             '`{"error": MESSAGE, "exit_code": 2}`). The messages are captured from real runs by '
             "`python -m tests.bad_inputs`.", "",
             "| # | bad input | command | exit | message |", "|---|---|---|---|---|"]
    for i, case in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as tmp:
            res = run_case(case, Path(tmp))
            # the case's folder is this machine's: show it as the working directory it was
            message = res.stderr.strip().replace(str(Path(tmp).resolve()), ".") \
                .replace(tmp, ".").replace("|", "\\|")
        command = " ".join(["cnnexp", *map(_shown_arg, case.args)]).replace("|", "\\|")
        lines.append(f"| {i} | {case.what} (`{case.id}`) | `{command}` | {res.exit_code} | "
                     f"{message} |")
    lines += ["", "Cases that need more than files to set up are tests of their own:", "",
              *[f"- {what} (`{test}`)" for test, what in OTHER_TESTS], "", *FAULTS]
    return "\n".join(lines) + "\n"


def _shown_arg(arg: str) -> str:
    return arg if len(arg) <= 140 else f"{arg[:12]}...({len(arg)} characters)"


# bad input and faults tested outside the table (a network to take away, servers, processes
# racing, a full disk, properties over many inputs)
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
    ("tests/tracking/test_store.py::test_processes_racing_on_a_fresh_sqlite_store_all_succeed",
     "four processes opening a new SQLite store at once: all succeed, the store works after"),
    ("tests/tracking/test_store.py::test_unusable_store_is_one_line_quickly",
     "a tracking server or database that is down: one line in seconds, not ~100 s of retries"),
    ("tests/tracking/test_store.py::test_read_only_store_is_bad_input_and_keeps_its_runs",
     "a read-only store: a new run is refused in one line, the store unchanged"),
    ("tests/tracking/test_store.py::test_disk_full_while_a_store_is_created_leaves_no_broken_store",
     "the disk full while a store is created: one line, and a working store next time"),
    ("tests/tracking/test_store.py::test_disk_full_mid_run_is_one_line_and_keeps_what_was_stored",
     "the disk full mid-run: one line, exit 1, the run FAILED, earlier runs intact"),
    ("tests/test_train_resume.py::test_two_resumes_at_once_one_is_refused",
     "two `train --resume RUN_ID` at once: one trains, the other is refused; each epoch "
     "logged once"),
    ("tests/test_train_resume.py::test_resume_is_refused_while_a_live_process_holds_the_run",
     "`train --resume` of a run another live process trains: refused, the run untouched"),
    ("tests/test_train_resume.py::test_resume_takes_a_unique_prefix_and_names_an_ambiguous_one",
     "`train --resume PREFIX`: a unique prefix works, a shared one names the runs"),
    ("tests/diagnose/test_run.py::test_diagnose_prefix_ambiguous_old_and_short",
     "`diagnose PREFIX`: ambiguous, older than the newest 1000 runs, under 6 characters"),
    ("tests/test_bad_inputs.py::test_report_on_runs_whose_parents_loop_ends",
     "`report` on runs naming themselves or their child as parent: it ends"),
    ("tests/tracking/test_ui.py::test_busy_port_is_one_line_before_any_server",
     "`ui` on a port in use: one line, exit 2, a free port suggested"),
    ("tests/tracking/test_ui.py::test_sigterm_stops_the_server_and_all_its_workers",
     "SIGTERM to `cnnexp ui`: `mlflow ui` and its workers stop, the port is free"),
    ("tests/test_redact.py::test_tracking_server_password_never_shows",
     "`http://user:PASSWORD@host` as tracking URI: no command, JSON or report shows it"),
]

FAULTS = [
    "## Faults: what holds",
    "",
    "- **One rule for errors.** Bad input: one line on stderr, exit 2. A run that fails "
    "mid-way because the machine or the store failed under it (disk full, store gone): one "
    "line, exit 1, the run ended FAILED where the store still takes that, everything stored "
    "before kept. With `--json` the error is also the one object on stdout, "
    '`{"error": "...", "exit_code": N}`, unless the command already printed its result. '
    "Passwords are redacted in every message, JSON object and report: those of the URLs a "
    "command was given (`--storage`, `MLFLOW_TRACKING_URI`) are parsed as SQLAlchemy and "
    "urllib read them and hidden wherever quoted, whatever they hold (`/ # ? ' \" ` or a "
    "space); other URLs' `user:***@host` and `?password=***` by pattern. An allocation the "
    "machine cannot make is one line too (exit 2, naming the knobs to lower), and a dataset "
    "that cannot fit in memory is refused before it is built.",
    "- **One signal policy.** Ctrl-C, SIGTERM and SIGHUP stop every command the same way: "
    "runs ended KILLED and resumable, a search's running trials re-queued, `--json` still one "
    "object (`{\"error\": \"stopped by SIGTERM\", \"exit_code\": 143}`); exit 130, 143, 129.",
    "- **Nothing finished is lost.** A training run keeps its last checkpoint until its "
    "outcome (test figure, classification artifacts, model, description) is recorded: a kill "
    "after the last epoch is resumable. `train --resume` ends a RUNNING run it cannot resume "
    "(no checkpoint, an unreadable one, one that no longer fits its recipe.yaml) FAILED with "
    "why instead of leaving it RUNNING. A search trial failed by the machine (disk full, "
    "store gone) is re-queued with its parameters and the search stops; `--resume` runs it.",
    "- **User text is text.** Names, arm labels and class folders print as written in every "
    "renderer: rich markup escaped (and an invalid one printed literally), matplotlib's math "
    "text off, CSV quoted, descriptions over MLflow's 8,000 characters cut in the middle, "
    "not at the results.",
    "- **The tracking store is opened once per process and checked first.** An http(s) "
    "server or a database server gets one connection attempt with a 5 s timeout (MLflow "
    "alone retries for ~100 s in silence); an unknown scheme, a file that is not a SQLite "
    "database, or a store that cannot be read or written is one line before any work.",
    "- **A new SQLite store is created under a lock and renamed into place.** MLflow migrates "
    "a fresh database without a lock, so processes starting together on a new store crashed "
    "and could leave it broken for good (`table _alembic_tmp_... already exists`). cnnexp "
    "holds an exclusive lock on `mlflow.db.lock` beside the database while it opens the store, "
    "and builds a new store under a temporary name before renaming it, so a migration cut "
    "short (disk full, Ctrl-C) leaves nothing half-built.",
    "- **One process trains a run at a time (the lease).** `cnnexp train` and `train --resume` "
    "hold a lease in the run's tag `cnnexp.lease` (host, pid, token, heartbeat every 20 s, "
    "the process's start time, boot and pid namespace) and delete it when they stop. A second "
    "`--resume` is refused while the holder lives; a lease is taken over when its process is "
    "gone (same host: the pid dead, or reused by another process) or its heartbeat is 90 s old. "
    "A tag, not a lock file, because it works on every store (SQLite, a tracking server, "
    "remote artifacts) and shows in the UI who trains the run; MLflow has no compare-and-set, "
    "so taking a lease is write, wait 1 s, read back: of two processes that found the run "
    "free, only the last writer reads its own token.",
    "- **`cnnexp ui`** checks the port (1-65535, free) and the host before starting, runs "
    "`mlflow ui` in a process group of its own and stops the whole group (its workers too) "
    "on Ctrl-C, SIGTERM or SIGHUP. The store reaches it in the environment, not on the "
    "command line where `ps` would show a password.",
]


if __name__ == "__main__":
    print(_markdown(), end="")
