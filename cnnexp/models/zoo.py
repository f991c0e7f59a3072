"""Any torchvision classification model with its head replaced; weights only from a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnexp.errors import BadInput, unknown
from cnnexp.models.registry import MODELS, ModelSpec
from cnnexp.schema import ArchCfg


def _replace_head(model: nn.Module, num_classes: int, dropout: float) -> nn.Module:
    """Swap the last Linear layer (fc / classifier[-1] / heads.head) for one with C outputs."""
    parent, attr, last = None, None, None
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                parent, attr, last = module, child_name, child
        del name
    if last is None:
        raise BadInput("zoo model has no linear classifier to replace")
    new = nn.Linear(last.in_features, num_classes)
    setattr(parent, attr, nn.Sequential(nn.Dropout(dropout), new) if dropout > 0 else new)
    return new


# models whose training-mode output is a tuple with auxiliary heads: built without them
_AUX_HEADS = {"googlenet", "inception_v3"}
_SAVE_HINT = "save one with torch.save(model.state_dict(), path)"


def _first_sentence(exc: Exception, limit: int = 120) -> str:
    """Library errors run to paragraphs (torch.load's weights_only advice): keep the gist."""
    lines = str(exc).strip().splitlines()
    return (lines[0].split(". ")[0] if lines else type(exc).__name__)[:limit]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict (names -> tensors) from a local file, or BadInput saying what it holds."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch.save file, or one holding arbitrary objects
        raise BadInput(f"cannot load weights from {path} ({_first_sentence(exc)}): "
                       f"{_SAVE_HINT}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        held = f"a dict with keys {', '.join(map(str, list(state)[:3]))}" \
            if isinstance(state, dict) else f"a {type(state).__name__}"
        raise BadInput(f"{path} is not a state_dict of tensors (it holds {held}): {_SAVE_HINT}")
    return state


def _load_weights(model: nn.Module, path: Path, name: str) -> None:
    state = _read_state_dict(path)
    own = model.state_dict()
    # keep tensors whose shapes fit: a checkpoint's head may have another class count
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise BadInput(f"{path} does not hold weights for {name} ({len(usable)} of its "
                       f"{len(own)} tensors match by name and shape)")
    model.load_state_dict(usable, strict=False)


def _check_runs(model: nn.Module, spec: ModelSpec, name: str) -> None:
    """One forward pass (eval mode: no statistics change) on blank images of the data's size,
    so that a model that cannot take them (ViTs want 224x224, Inception at least 75x75) is
    bad input before any run exists rather than an AssertionError in the first step."""
    was_training = model.training
    x = torch.zeros(2, spec.channels, spec.image_size, spec.image_size)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # shape asserts, kernel larger than the feature map, ...
        raise BadInput(f"arch.zoo_model '{name}' cannot run on {spec.image_size}x"
                       f"{spec.image_size} images ({_first_sentence(exc)}): set "
                       "data.resize=224 or use a model for small images such as resnet18") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        raise BadInput(f"arch.zoo_model '{name}' does not return one logit per class "
                       "(a detection or segmentation model?): pick a classifier such as resnet18")


def check_zoo_name(name: str) -> None:
    """BadInput unless torchvision has a classification model of this name."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        raise unknown("torchvision model", name, names)


@MODELS.register("zoo")
def zoo(cfg: ArchCfg, spec: ModelSpec) -> nn.Module:
    import torchvision

    check_zoo_name(cfg.zoo_model)
    extra = {"aux_logits": False, "init_weights": True} if cfg.zoo_model in _AUX_HEADS else {}
    model = torchvision.models.get_model(cfg.zoo_model, weights=None, **extra)
    if cfg.weights_path:
        path = Path(cfg.weights_path).expanduser()
        if not path.is_file():
            raise BadInput(f"arch.weights_path not found: {cfg.weights_path}")
        _load_weights(model, path, cfg.zoo_model)
    new_head = _replace_head(model, spec.num_classes, spec.dropout)
    if cfg.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in new_head.parameters():
            p.requires_grad_(True)
    if spec.channels != 3:  # grey images: repeat to 3 channels in front of the model
        model = nn.Sequential(_RepeatChannels(3), model)
    _check_runs(model, spec, cfg.zoo_model)
    return model


class _RepeatChannels(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x
