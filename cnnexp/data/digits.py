"""scikit-learn's bundled 8x8 handwritten digits: the embedded default, no download."""

from __future__ import annotations

import torch

from cnnexp.data.bundle import DataBundle, from_arrays
from cnnexp.data.registry import DATASETS
from cnnexp.schema import DataCfg


@DATASETS.register("digits")
def digits(cfg: DataCfg) -> DataBundle:
    from sklearn.datasets import load_digits

    raw = load_digits()
    # pixel values are 0..16: scale to the uint8 range every other dataset uses
    x = torch.from_numpy(raw.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(raw.target).long()
    return from_arrays("digits", x, y, [str(i) for i in range(10)],
                       val_fraction=cfg.val_fraction, split_seed=cfg.split_seed,
                       resize=cfg.resize, subset=cfg.subset, test_fraction=cfg.test_fraction,
                       source="sklearn.datasets.load_digits")
