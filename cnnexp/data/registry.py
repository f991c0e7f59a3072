"""The dataset registry: name -> builder(DataCfg, seed) -> DataBundle."""

from __future__ import annotations

from collections.abc import Callable

from cnnexp.data.bundle import DataBundle
from cnnexp.registry import Registry
from cnnexp.schema import DataCfg

DATASETS: Registry[Callable[[DataCfg], DataBundle]] = Registry("dataset")
