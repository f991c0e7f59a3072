"""Each sanity check passes on the default recipe and fails (or warns) on a deliberately
broken one. Real recipes, real data, real training steps; the broken models are small
hand-written modules handed in through `model_factory`, as a user would from a notebook."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnexp.data import build_data
from cnnexp.data.bundle import DataBundle
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe
from cnnexp.sanity import SanityContext, run_check
from cnnexp.sanity.run import parse_checks

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return build_data(load_recipe("digits"))


def ctx(data: DataBundle, *overrides: str, **kw) -> SanityContext:
    return SanityContext(load_recipe("digits", list(overrides)), data, CPU, **kw)


class IgnoresInput(nn.Module):
    """A CNN whose first layer sees the input multiplied by zero: its output is the same
    for every image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x * 0)).mean(dim=(2, 3))
        return self.head(h)


class Detached(nn.Module):
    """The first block's output is detached: no gradient reaches the first conv."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x)).detach()
        return self.head(torch.relu(self.second(h)).mean(dim=(2, 3)))


class _ShrinkGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1e-6


class VanishingGrad(Detached):
    """Gradients reach the first conv a million times weaker than the rest."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _ShrinkGrad.apply(torch.relu(self.first(x)))
        return self.head(torch.relu(self.second(h)).mean(dim=(2, 3)))


class FrozenWeights(Detached):
    """Only biases train: weight decay (which skips 1-D parameters) reaches nothing."""

    def __init__(self) -> None:
        super().__init__()
        for m in (self.first, self.second, self.head):
            m.weight.requires_grad_(False)


# --- data -------------------------------------------------------------------------------

def test_data_passes_on_default(digits) -> None:
    r = run_check("data", ctx(digits))
    assert r.status == "pass", r.hint
    assert abs(r.fields["train_mean"][0]) < 0.05 and abs(r.fields["train_std"][0] - 1) < 0.05
    assert sum(r.fields["train_hist"]) == digits.n_train and r.fields["class_mismatch"] < 0.1


def test_data_fails_on_mis_set_normalisation(digits) -> None:
    # mean 0 / std 1 on the [0, 1] scale: the inputs reach the model un-normalised
    broken = DataBundle(**{**digits.__dict__, "mean": torch.zeros(1), "std": torch.ones(1)})
    r = run_check("data", ctx(broken))
    assert r.status == "fail" and "normalisation" in r.hint
    assert r.fields["train_std"][0] < 0.5


def test_data_fails_on_a_class_missing_from_train(digits) -> None:
    keep = digits.train_y != 3
    broken = DataBundle(**{**digits.__dict__, "train_x": digits.train_x[keep],
                           "train_y": digits.train_y[keep]})
    r = run_check("data", ctx(broken))
    assert r.status == "fail" and r.fields["missing_in_train"] == ["3"]


def test_data_warns_on_a_skewed_split(digits) -> None:
    keep = (digits.val_y < 5) | (torch.arange(digits.n_val) % 4 == 0)
    broken = DataBundle(**{**digits.__dict__, "val_x": digits.val_x[keep],
                           "val_y": digits.val_y[keep]})
    r = run_check("data", ctx(broken))
    assert r.status == "warn" and r.fields["class_mismatch"] > 0.1


# --- init-loss / reg-loss ------------------------------------------------------------------

def test_init_loss_near_ln10_on_default(digits) -> None:
    r = run_check("init-loss", ctx(digits))
    assert r.status == "pass"
    assert r.fields["expected_loss"] == pytest.approx(math.log(10))
    assert abs(r.fields["loss"] - math.log(10)) < 0.1 * math.log(10)


@pytest.mark.parametrize("arch", ["small_cnn", "lenet5"])
def test_init_loss_fails_with_huge_init_std(digits, arch: str) -> None:
    r = run_check("init-loss", ctx(digits, f"arch={arch}", "arch.init=normal",
                                   "arch.init_std=1.0"))
    assert r.status == "fail" and r.fields["rel_error"] > 0.1
    assert "final layer" in r.hint


def test_init_loss_with_label_smoothing_still_expects_ln_c(digits) -> None:
    r = run_check("init-loss", ctx(digits, "reg=label_smoothing"))
    assert r.status == "pass"
    assert r.fields["loss_with_smoothing"] == pytest.approx(math.log(10), rel=0.1)


def test_reg_loss_rises_on_default(digits) -> None:
    r = run_check("reg-loss", ctx(digits))
    assert r.status == "pass" and r.fields["reg_loss"] > r.fields["loss"]
    assert r.fields["weight_decay_used"] == pytest.approx(5e-4 * 1e3)


def test_reg_loss_uses_a_reference_decay_when_the_recipe_has_none(digits) -> None:
    r = run_check("reg-loss", ctx(digits, "reg=none", "opt.weight_decay=0"))
    assert r.status == "pass" and "reference" in r.expected


def test_reg_loss_warns_when_weights_are_tiny(digits) -> None:
    r = run_check("reg-loss", ctx(digits, "arch.init=normal", "arch.init_std=1e-5"))
    assert r.status == "warn" and r.fields["rise"] < 0.01


def test_reg_loss_fails_when_decay_reaches_nothing(digits) -> None:
    r = run_check("reg-loss", ctx(digits, model_factory=FrozenWeights))
    assert r.status == "fail" and r.fields["penalty"] == 0


# --- grad-flow ---------------------------------------------------------------------------

def test_grad_flow_passes_on_default(digits) -> None:
    r = run_check("grad-flow", ctx(digits))
    assert r.status == "pass", r.hint
    layers = r.fields["layers"]
    assert len(layers) == 6 and all(row["grad_norm"] > 0 for row in layers)
    assert r.fields["ratio"] == pytest.approx(layers[0]["grad_norm"] / layers[-1]["grad_norm"])


@pytest.mark.parametrize("model", [IgnoresInput, Detached])
def test_grad_flow_fails_when_no_gradient_reaches_the_first_layer(digits, model) -> None:
    r = run_check("grad-flow", ctx(digits, model_factory=model))
    assert r.status == "fail" and "no gradient reaches" in r.hint


def test_grad_flow_warns_on_vanishing_gradients(digits) -> None:
    r = run_check("grad-flow", ctx(digits, model_factory=VanishingGrad))
    assert r.status == "warn" and r.fields["ratio"] < 1e-3 and "vanishing" in r.hint


# --- overfit -----------------------------------------------------------------------------

def test_overfit_reaches_100_percent_on_default(digits) -> None:
    r = run_check("overfit", ctx(digits, tiny=20))
    assert r.status == "pass"
    assert 1 <= r.fields["steps"] < 300 and r.fields["final_acc"] == 1.0
    assert r.fields["final_loss"] < r.fields["initial_loss"]


def test_overfit_fails_when_the_output_ignores_the_input(digits) -> None:
    r = run_check("overfit", ctx(digits, tiny=20, overfit_steps=60,
                                 model_factory=IgnoresInput))
    assert r.status == "fail" and r.fields["steps"] is None
    assert r.fields["best_acc"] < 1.0 and "depends on its input" in r.hint


def test_overfit_fails_with_its_reason_when_the_loss_diverges(digits) -> None:
    r = run_check("overfit", ctx(digits, "opt.lr=1e6", tiny=20))
    assert r.status == "fail" and "diverged" in r.measured and "opt.lr" in r.hint


def test_overfit_rejects_a_tiny_set_larger_than_the_data(digits) -> None:
    with pytest.raises(BadInput, match="only"):
        run_check("overfit", ctx(digits, tiny=digits.n_train + 1))


# --- lr-range and the check list ---------------------------------------------------------

def test_lr_range_check_suggests_an_override(digits) -> None:
    r = run_check("lr-range", ctx(digits, lr_range={"num_steps": 40}))
    assert r.status in ("pass", "warn")
    assert r.fields["suggested_lr"] > 0 and set(r.fields["suggestions"]) <= \
        {"valley", "steepest", "min/10"}
    assert r.fields["override"] == f"opt.lr={r.fields['suggested_lr']:.2g}"
    assert isinstance(r.fields["agree"], bool)


def test_check_names_are_validated_and_ordered() -> None:
    assert parse_checks("overfit,data") == ["data", "overfit"]
    assert parse_checks(None) == ["data", "init-loss", "reg-loss", "grad-flow", "overfit",
                                  "lr-range"]
    with pytest.raises(BadInput, match="did you mean 'grad-flow'"):
        parse_checks("grad_flow")


def test_a_crashing_check_becomes_a_failed_verdict(digits) -> None:
    class WrongShape(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.linear(x.flatten(1), torch.zeros(10, 3))

    r = run_check("init-loss", ctx(digits, model_factory=WrongShape))
    assert r.status == "fail" and r.measured == "error" and "RuntimeError" in r.hint


class NaNOutput(nn.Module):
    """Logits that are NaN for every input: a model that has already diverged."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1)) * float("nan")


@pytest.mark.parametrize("check", ["init-loss", "reg-loss", "grad-flow", "overfit",
                                   "lr-range"])
def test_a_nan_model_fails_each_check_with_a_reason(digits, check: str) -> None:
    r = run_check(check, ctx(digits, model_factory=NaNOutput, overfit_steps=5,
                             lr_range={"num_steps": 10}))
    assert r.status == "fail" and r.hint and r.measured != "error"


def test_on_disk_data_runs_every_check(tmp_path) -> None:
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for i in range(10):
            pixels = (torch.rand(12, 12, 3, generator=gen) * 60 + 60 * c).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(tmp_path / f"class{c}" / f"{i}.png")
    recipe = load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}",
                                    "data.num_workers=0", "arch=lenet5", "train.batch_size=8"])
    data = build_data(recipe)
    assert not data.in_memory
    c = SanityContext(recipe, data, CPU, tiny=6, lr_range={"num_steps": 12})
    results = {name: run_check(name, c) for name in
               ("data", "init-loss", "reg-loss", "grad-flow", "overfit", "lr-range")}
    assert all(r.measured != "error" for r in results.values()), \
        {n: r.hint for n, r in results.items()}
    # 10 images a class: 2 sealed away as the test split, 2 of the rest for validation.
    assert results["data"].fields["train_hist"] == [6, 6, 6]
    assert results["overfit"].status == "pass"
