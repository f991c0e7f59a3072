"""torchvision datasets read from a local root (download only when asked), held in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnexp.data.bundle import DataBundle, from_arrays
from cnnexp.data.registry import DATASETS
from cnnexp.errors import BadInput
from cnnexp.schema import DataCfg

# MNIST and Fashion-MNIST are read from their IDX files by cnnexp.data.mnist
_CLASSES = {"cifar10", "cifar100", "svhn"}


def _open(name: str, cfg: DataCfg, train: bool = True):  # -> torchvision dataset
    import torchvision.datasets as tvd

    root = Path(cfg.root or "./data").expanduser()
    if not cfg.download and not root.is_dir():
        raise BadInput(f"data.root '{root}' does not exist (put {name} there or set "
                       f"data.download=true)")
    make = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}
    try:
        if name == "svhn":
            return tvd.SVHN(str(root), split="train" if train else "test", download=cfg.download)
        return make[name](str(root), train=train, download=cfg.download)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; MNIST wraps it in one
        if cfg.download:
            raise BadInput(f"cannot download {name} into '{root}' ({_reason(exc)}): check the "
                           "network, or put the files there and set data.download=false") from None
        if isinstance(exc, OSError):
            raise BadInput(f"cannot read {name} under '{root}': {_reason(exc)}") from None
        raise BadInput(f"{name} not found under '{root}' ({_reason(exc)}); "
                       f"set data.root or data.download=true") from None


def _reason(exc: Exception) -> str:
    """One line from a download or read failure (MNIST's lists every mirror it tried)."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _to_uint8_nchw(data: object) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(data))
    if x.ndim == 3:  # MNIST-like N,H,W
        return x.unsqueeze(1).contiguous()
    if x.shape[-1] in (1, 3):  # CIFAR N,H,W,C
        return x.permute(0, 3, 1, 2).contiguous()
    return x.contiguous()  # SVHN already N,C,H,W


def _arrays(ds: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = _to_uint8_nchw(ds.data)  # type: ignore[attr-defined]
    y = torch.as_tensor(np.asarray(ds.targets if hasattr(ds, "targets")
                                   else ds.labels)).long()  # type: ignore[attr-defined]
    return x, y


def _builder(name: str):
    def build(cfg: DataCfg) -> DataBundle:
        ds = _open(name, cfg)
        x, y = _arrays(ds)
        test = _arrays(_open(name, cfg, train=False))  # the official test split
        classes = list(getattr(ds, "classes", [str(i) for i in range(int(y.max()) + 1)]))
        return from_arrays(name, x, y, [str(c) for c in classes],
                           val_fraction=cfg.val_fraction, split_seed=cfg.split_seed,
                           resize=cfg.resize, subset=cfg.subset, test=test,
                           source=f"torchvision.datasets:{name}@{ds.root}")
    return build


for _name in sorted(_CLASSES):
    DATASETS.register(_name)(_builder(_name))
