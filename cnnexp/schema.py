"""The recipe schema: every field a recipe may set, its type and its range.

Unknown keys are forbidden everywhere so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GROUPS = ("data", "arch", "aug", "reg", "opt")
MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2**32
# the recipe name is the default MLflow experiment name and starts every run name; MLflow's
# SQL stores hold 256 characters of experiment name and 250 of run name
MAX_NAME = 128


def check_name(name: str) -> str:
    """A recipe or experiment name MLflow can store and a terminal can show, else ValueError."""
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"a name must be 1 to {MAX_NAME} printable characters")
    return name


class Strict(BaseModel):
    # inf/nan are never a setting: `opt.lr=inf` would pass `gt=0` and train on NaNs
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataCfg(Strict):
    name: str = "digits"
    dataset: str = "digits"
    root: str | None = None  # torchvision datasets: local folder
    path: str | None = None  # imagefolder: folder of class sub-folders
    download: bool = False
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # data sets without an official test split hold out this fraction (stratified, fixed seed,
    # before the train/val split) for the final `--test` evaluation; 0 = no test split
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    # fixed across training seeds: seeds vary init, not data
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    resize: int | None = Field(None, ge=4, le=1024)
    subset: int | None = Field(None, ge=2)  # cap on training examples (quick looks)
    # shapes (procedural) only
    num_classes: int = Field(10, ge=2, le=1000)
    num_samples: int = Field(6000, ge=20)
    image_size: int = Field(32, ge=8, le=512)
    # on-disk datasets only
    num_workers: int = Field(2, ge=0, le=64)


class ArchCfg(Strict):
    name: str = "small_cnn"
    model: str = "small_cnn"
    norm: Literal["none", "batch", "layer", "instance", "group"] = "batch"
    activation: Literal["relu", "gelu", "silu"] = "relu"
    init: Literal["kaiming", "xavier", "normal", "default"] = "kaiming"
    init_std: float = Field(0.01, gt=0.0, le=100.0)
    width: int = Field(32, ge=1, le=4096)  # channels of the first stage
    depth: int = Field(20, ge=1, le=1000)  # resnet depth (20, 32, 56, 18, 34)
    # vgg convs per stage
    stages: list[int] = Field(default_factory=lambda: [1, 1, 2, 2, 2], min_length=1, max_length=16)
    zoo_model: str = "resnet18"  # torchvision model name for `zoo`
    weights_path: str | None = None  # local state_dict for `zoo`
    freeze_backbone: bool = False

    @field_validator("stages")
    @classmethod
    def _stages_positive(cls, stages: list[int]) -> list[int]:
        if not all(1 <= n <= 64 for n in stages):
            raise ValueError("arch.stages counts convs per stage: each 1 to 64, e.g. [1, 1, 2, 2, 2]")
        return stages


class AugCfg(Strict):
    name: str = "none"
    flip: bool = False
    translate: int = Field(0, ge=0, le=64)  # pixels, random crop with reflect padding
    scale: tuple[float, float] | None = None  # random zoom range, e.g. [0.8, 1.2]
    rotation: float = Field(0.0, ge=0.0, le=180.0)  # degrees
    color_jitter: float = Field(0.0, ge=0.0, le=1.0)  # brightness/contrast/saturation strength
    cutout: int = Field(0, ge=0, le=512)  # side of the erased square, pixels
    mixup: float = Field(0.0, ge=0.0, le=10.0)  # Beta(alpha, alpha); 0 = off
    cutmix: float = Field(0.0, ge=0.0, le=10.0)
    tta: bool = False  # average predictions over the flipped image at eval

    @model_validator(mode="after")
    def _scale_range(self) -> AugCfg:
        if self.scale is not None and not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError("aug.scale must be [low, high] with 0 < low <= high")
        return self


class RegCfg(Strict):
    name: str = "none"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the classifier
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    l1: float = Field(0.0, ge=0.0)
    patience: int | None = Field(None, ge=1)  # early stopping on val loss
    ema: float | None = Field(None, gt=0.0, lt=1.0)  # EMA decay of weights, evaluated with


class OptCfg(Strict):
    name: str = "sgd"
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"] = "sgd"
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw
    schedule: Literal["none", "step", "cosine", "onecycle", "plateau"] = "none"
    step_epochs: int = Field(30, ge=1)  # step: multiply lr by gamma every step_epochs
    gamma: float = Field(0.5, gt=0.0, le=1.0)
    warmup_epochs: float = Field(0.0, ge=0.0)
    grad_clip: float | None = Field(None, gt=0.0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("opt.betas must be two decay rates in [0, 1), e.g. [0.9, 0.999]")
        return betas

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptCfg:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("opt.nesterov needs optimizer sgd with momentum > 0")
        return self


class TrainCfg(Strict):
    epochs: int = Field(10, ge=1, le=100000)
    batch_size: int = Field(128, ge=1, le=65536)
    # auto = 1024 on a GPU; on a CPU the batch whose activations fit the caches (2-3x faster
    # evaluation there; cnnexp.engine.eval_batch)
    eval_batch_size: Annotated[int, Field(ge=1, le=65536)] | Literal["auto"] = "auto"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # CUDA only; auto = bf16 if supported
    # memory format: auto = channels_last on CUDA, on a CPU whichever layout measures faster
    # for this model (cnnexp.engine.layout); true/false force it
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    # tracked runs save a resumable checkpoint after an epoch at most this often (0 = every
    # epoch); `cnnexp train --resume RUN_ID` continues from the last one
    checkpoint_seconds: float = Field(30.0, ge=0.0)


class Recipe(Strict):
    name: str = "recipe"
    description: str = ""
    defaults: dict[str, str] = Field(default_factory=dict)
    data: DataCfg = Field(default_factory=DataCfg)
    arch: ArchCfg = Field(default_factory=ArchCfg)
    aug: AugCfg = Field(default_factory=AugCfg)
    reg: RegCfg = Field(default_factory=RegCfg)
    opt: OptCfg = Field(default_factory=OptCfg)
    train: TrainCfg = Field(default_factory=TrainCfg)
    # validated by cnnexp.search when a search runs; kept free-form here
    search: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        return check_name(name)

    def flat(self) -> dict[str, Any]:
        """Flattened `group.field` params, as logged to MLflow."""
        out: dict[str, Any] = {}
        for group in (*GROUPS, "train"):
            for key, value in getattr(self, group).model_dump().items():
                out[f"{group}.{key}"] = value
        return out
