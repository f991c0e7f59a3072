"""Pick the training device: auto prefers CUDA, then MPS, then CPU.

Resolved once, at the edge (the command line, a search worker process, the public `fit`);
everything below takes a `torch.device`."""

from __future__ import annotations

import re

import torch

from cnnexp.errors import BadInput


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BadInput("--device mps: MPS is not available on this machine (try --device cpu)")
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m:
        if not torch.cuda.is_available():
            raise BadInput(f"--device {name}: CUDA is not available on this machine "
                           "(try --device cpu)")
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise BadInput(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise BadInput(f"unknown device '{name}' (valid: auto, cpu, cuda, cuda:N, mps)")


def as_device(device: str | torch.device) -> torch.device:
    """A device as given, or resolved from its name (the public API accepts either)."""
    return device if isinstance(device, torch.device) else resolve_device(device)
