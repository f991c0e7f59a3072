"""MNIST and Fashion-MNIST from their IDX files in any folder, with the official test split.

`data.root` may hold the four files flat (Debian's `dataset-fashion-mnist` package and the
datasets' own repositories) or in torchvision's `FashionMNIST/raw/` (`MNIST/raw/`) layout,
gzipped or not. With no root set, fashion_mnist looks in Debian's folder first."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnexp.data.bundle import DataBundle, from_arrays
from cnnexp.data.idx import read_pair
from cnnexp.data.registry import DATASETS
from cnnexp.errors import BadInput
from cnnexp.schema import DataCfg

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class Family:
    def __init__(self, name: str, title: str, torchvision_dir: str, classes: list[str],
                 system_roots: tuple[str, ...] = ()) -> None:
        self.name, self.title, self.torchvision_dir = name, title, torchvision_dir
        self.classes, self.system_roots = classes, system_roots

    def default_root(self) -> Path:
        """Debian's folder when the package is installed, else ./data."""
        for root in self.system_roots:
            if Path(root).is_dir():
                return Path(root)
        return Path("./data")

    def folders(self, root: Path) -> list[Path]:
        return [root, root / self.torchvision_dir / "raw"]

    def locate(self, root: Path) -> Path:
        """The folder holding the files, flat or in torchvision's layout."""
        for folder in self.folders(root):
            if _find(folder, FILES["train"][0]) is not None:
                return folder
        looked = " and ".join(str(f) for f in self.folders(root))
        hint = (" (Debian: apt-get install dataset-fashion-mnist)"
                if self.system_roots else "")
        raise BadInput(f"no {self.title} IDX files ({FILES['train'][0]}[.gz]) in {looked}: set "
                       f"data.root to the folder holding them{hint}")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = (_find(folder, stem) for stem in FILES[split])
    if images is None or labels is None:
        missing = [s for s, p in zip(FILES[split], (images, labels), strict=True) if p is None]
        raise BadInput(f"{folder}: missing {missing[0]}[.gz] (the {split} split needs both "
                       f"{FILES[split][0]} and {FILES[split][1]})")
    x, y = read_pair(images, labels)
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype("int64"))


def _download(family: Family, root: Path) -> None:
    """data.download=true: torchvision fetches the files into root/<Name>/raw/."""
    import torchvision.datasets as tvd

    make = tvd.FashionMNIST if family.name == "fashion_mnist" else tvd.MNIST
    try:
        make(str(root), train=True, download=True)
    except (OSError, RuntimeError) as exc:
        reason = str(getattr(exc, "reason", None) or exc).splitlines()
        raise BadInput(f"cannot download {family.name} into '{root}' "
                       f"({reason[-1] if reason else type(exc).__name__}): check the network, "
                       "or put the files there and set data.download=false") from None


def build(family: Family, cfg: DataCfg) -> DataBundle:
    root = Path(cfg.root).expanduser() if cfg.root else family.default_root()
    if cfg.download:
        _download(family, root)
    if not root.is_dir():
        raise BadInput(f"data.root '{root}' is not a folder (set data.root to the folder "
                       f"holding the {family.title} IDX files)")
    folder = family.locate(root)
    x, y = _split(folder, "train")
    test = _split(folder, "test")
    labels = int(max(y.max(), test[1].max())) + 1
    if labels > len(family.classes):
        raise BadInput(f"{folder}: labels go up to {labels - 1}, {family.title} has "
                       f"{len(family.classes)} classes (is this the right data set?)")
    return from_arrays(family.name, x, y, family.classes, val_fraction=cfg.val_fraction,
                       split_seed=cfg.split_seed, resize=cfg.resize, subset=cfg.subset,
                       test=test, source=f"{family.title} IDX files in {folder}")


FASHION = Family("fashion_mnist", "Fashion-MNIST", "FashionMNIST",
                 ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"],
                 system_roots=("/usr/share/datasets/fashion-mnist",))
MNIST = Family("mnist", "MNIST", "MNIST", [str(i) for i in range(10)])

for _family in (FASHION, MNIST):
    DATASETS.register(_family.name)(lambda cfg, _f=_family: build(_f, cfg))
