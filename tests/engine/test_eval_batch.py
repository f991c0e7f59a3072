"""The evaluation batch size: cache-sized on a CPU, large on a GPU, the recipe's when given."""

from __future__ import annotations

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine.eval_batch import (
    CPU_ACTIVATION_BUDGET,
    GPU_BATCH,
    eval_batch_size,
    largest_activation_bytes,
)
from cnnexp.engine.trainer import Trainer
from cnnexp.models import ModelSpec, build_model
from cnnexp.recipe import load_recipe

CPU = torch.device("cpu")


def small_cnn(size: int, channels: int = 1) -> torch.nn.Module:
    return build_model(load_recipe("digits"), ModelSpec(channels, 10, size))


def test_auto_on_a_cpu_keeps_the_largest_activation_within_the_budget() -> None:
    model = small_cnn(28)
    image = torch.zeros(1, 1, 28, 28)
    per_image = largest_activation_bytes(model, image)
    assert per_image == 32 * 28 * 28 * 4  # the first conv block's output, float32
    batch = eval_batch_size("auto", model, image, CPU)
    assert batch * per_image <= CPU_ACTIVATION_BUDGET < 2 * batch * per_image
    assert batch & (batch - 1) == 0  # a power of two


def test_small_images_keep_the_large_batch_and_other_devices_get_it() -> None:
    assert eval_batch_size("auto", small_cnn(8), torch.zeros(1, 1, 8, 8), CPU) == GPU_BATCH
    big = small_cnn(28)
    assert eval_batch_size("auto", big, torch.zeros(1, 1, 28, 28),
                           torch.device("cuda")) == GPU_BATCH
    assert eval_batch_size(300, big, torch.zeros(1, 1, 28, 28), CPU) == 300


def test_measuring_leaves_the_model_as_it_was() -> None:
    model = small_cnn(16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    largest_activation_bytes(model, torch.randn(1, 1, 16, 16))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("setting", ["auto", 7])
def test_validation_results_do_not_depend_on_the_batch(setting: str | int) -> None:
    recipe = load_recipe("digits", ["data.subset=200"])
    data = build_data(recipe)
    reference = Trainer(recipe, data, CPU).evaluate()  # auto: 1024 for 8x8 digits
    other = load_recipe("digits", ["data.subset=200", f"train.eval_batch_size={setting}"])
    got = Trainer(other, data, CPU).evaluate()
    assert got["val_acc"] == reference["val_acc"]
    assert got["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)
