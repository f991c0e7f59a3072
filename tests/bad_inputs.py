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


CASES: list[Case] = [
    Case("yaml-syntax", "malformed YAML (with file and line)", ("train", "bad.yaml"),
         "malformed YAML in bad.yaml:2", {"bad.yaml": "defaults: {data: digits}\ntrain: {epochs: 2]\nopt: {}\n"}),
    Case("yaml-not-mapping", "YAML whose top level is a list", ("train", "list.yaml"),
         "expected a mapping at the top level", {"list.yaml": "- 1\n- 2\n"}),
    Case("yaml-python-tag", "YAML trying to run code", ("train", "evil.yaml"),
         "malformed YAML", {"evil.yaml": "name: !!python/object/apply:os.system [ls]\n"}),
    Case("yaml-binary", "a binary file as recipe", ("train", "blob.yaml"),
         "malformed YAML", {"blob.yaml": b"\xff\xfe\x00\x01"}),
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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(_markdown(), end="")
