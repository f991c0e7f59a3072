"""The LR range test: suggestion rules, a convex problem with a known stable range, and
state restoration (weights, optimiser, RNG) so a later fit is unaffected."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine import fit
from cnnexp.engine.lr_range import analyse, lr_find, lr_schedule, range_test, recommend, suggest
from cnnexp.engine.trainer import Trainer
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe
from cnnexp.sanity.lr_check import judge

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return build_data(load_recipe("digits", ["data.subset=400"]))


def _least_squares(seed: int = 0):
    """A convex quadratic: GD/SGD on the full batch is stable iff lr < 2 / L, with L the
    largest eigenvalue of the Hessian 2 X^T X / n."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 20, generator=gen) * torch.linspace(0.2, 3.0, 20)
    y = x @ torch.randn(20, 1, generator=gen) + 0.1 * torch.randn(512, 1, generator=gen)
    lipschitz = float(torch.linalg.eigvalsh(2 * x.T @ x / len(x)).max())
    model = torch.nn.Linear(20, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step() -> torch.Tensor:
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return model, opt, step, 2.0 / lipschitz


@pytest.mark.parametrize("seed", [0, 1])
def test_convex_problem_suggests_a_stable_lr(seed: int) -> None:
    model, opt, step, stable = _least_squares(seed)
    result = range_test(model, opt, step)
    assert result.descended and result.suggested_lr is not None
    # inside the stable range, and not uselessly small (within two decades of its edge)
    assert stable / 100 < result.suggested_lr < stable
    assert all(lr < 2 * stable for lr in result.suggestions.values())
    assert result.agree, result.suggestions
    # and it really trains: a fixed-LR run at the suggestion converges
    _, opt2, step2, _ = _least_squares(seed)
    for group in opt2.param_groups:
        group["lr"] = result.suggested_lr
    first = float(step2().detach())
    for _ in range(200):
        last = float(step2().detach())
    assert last < 0.05 * first


def test_rules_on_a_synthetic_curve() -> None:
    lrs = lr_schedule(1e-6, 1.0, 121)  # 20 points per decade
    logs = np.log10(lrs)
    # flat at 2.3, descends between 1e-4 and 1e-2 (steepest at 1e-3), rises after 1e-1
    loss = 2.3 - 1.5 / (1 + np.exp(-(logs + 3) * 3)) + np.where(logs > -1, (logs + 1) ** 2 * 8, 0)
    rules = suggest(lrs, loss.tolist())
    assert set(rules) == {"valley", "steepest", "min/10"}
    assert 10**-3.2 < rules["steepest"] < 10**-2.8
    assert 1e-4 < rules["valley"] < 1e-2
    i_min = int(np.argmin(loss))
    assert rules["min/10"] == pytest.approx(lrs[i_min] / 10)
    lr, agree, spread = recommend(rules)
    assert sorted(rules.values())[1] == pytest.approx(lr)  # the median of three
    assert agree == (spread <= 1.0)


def test_recommend_flags_disagreement() -> None:
    lr, agree, spread = recommend({"valley": 1e-4, "steepest": 1e-3, "min/10": 1e-1})
    assert lr == pytest.approx(1e-3) and not agree and spread == pytest.approx(3.0)
    assert recommend({}) == (None, False, pytest.approx(math.nan, nan_ok=True))


def test_non_finite_loss_stops_the_sweep_and_fails_the_check() -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step() -> torch.Tensor:
        calls.append(opt.param_groups[0]["lr"])
        return torch.tensor(float("nan") if len(calls) > 3 else 1.0)

    result = range_test(model, opt, step, num_steps=50)
    assert len(calls) == 4 and "non-finite" in result.stop_reason
    assert not result.descended and result.suggested_lr is None
    verdict = judge(result, recipe_lr=0.1)
    assert verdict.status == "fail" and "never went down" in verdict.measured


def test_bad_sweep_bounds_are_bad_input() -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(BadInput, match="start < end"):
        range_test(model, opt, lambda: torch.tensor(1.0), start_lr=1.0, end_lr=1e-3)


def _snapshot(trainer: Trainer) -> dict:
    return {"weights": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "opt": str(trainer.optimizer.state_dict()), "torch": torch.get_rng_state(),
            "py": random.getstate(), "np": np.random.get_state()[1].copy(),
            "gen": trainer.gen.get_state(), "host": trainer.aug.host_rng.getstate(),
            "lr": trainer.optimizer.param_groups[0]["lr"]}


def test_lr_find_restores_weights_optimiser_and_rng(digits) -> None:
    recipe = load_recipe("digits", ["data.subset=400", "aug=standard", "train.batch_size=32"])
    trainer = Trainer(recipe, digits, torch.device("cpu"))
    # give the optimiser some momentum state first, so there is state to restore
    fit_state = type("S", (), {})()
    trainer.train_epoch(fit_state, ())
    before = _snapshot(trainer)
    result = lr_find(trainer, num_steps=20)
    assert len(result.lrs) > 5
    after = _snapshot(trainer)
    assert before["weights"].keys() == after["weights"].keys()
    for key, value in before["weights"].items():
        assert torch.equal(value, after["weights"][key]), key
    assert before["opt"] == after["opt"] and before["lr"] == after["lr"]
    assert torch.equal(before["torch"], after["torch"]) and before["py"] == after["py"]
    assert (before["np"] == after["np"]).all()
    assert torch.equal(before["gen"], after["gen"]) and before["host"] == after["host"]


def test_a_fit_after_lr_find_is_unaffected(digits) -> None:
    recipe = load_recipe("digits", ["data.subset=400", "train.epochs=1", "train.batch_size=32"])
    plain = fit(recipe, data=digits, device="cpu")
    trainer = Trainer(recipe, digits, torch.device("cpu"))
    lr_find(trainer, num_steps=15)
    after = fit(recipe, data=digits, device="cpu", model=trainer.model)
    assert after.history[0]["train_loss"] == plain.history[0]["train_loss"]
    assert after.history[0]["val_loss"] == plain.history[0]["val_loss"]


def test_a_later_dip_at_unstable_lrs_is_ignored() -> None:
    lrs = lr_schedule(1e-4, 10.0, 101)  # 20 points per decade
    logs = np.log10(lrs)
    # descends to 1.0 around lr 0.1, climbs back to 1.8 (unstable), then dips to 0.8 at lr 5
    loss = 2.3 - 1.3 / (1 + np.exp(-(logs + 1.5) * 4))
    loss += np.where(logs > -1, 0.8 * np.sin(np.clip((logs + 1) * np.pi / 1.6, 0, np.pi)), 0)
    loss += np.where(logs > 0.5, -1.0 * np.exp(-((logs - 0.7) ** 2) / 0.01), 0)
    assert int(np.argmin(loss)) > 80  # the global minimum is the late dip
    result = analyse(lrs, loss.tolist(), loss.tolist(), "test", 1e-4, 10.0)
    assert result.suggested_lr < 0.2 and result.suggestions["min/10"] < 0.02
    assert result.agree


def test_plateau_noise_before_the_descent_is_not_a_valley() -> None:
    lrs = lr_schedule(1e-7, 10.0, 100)
    logs = np.log10(lrs)
    noise = 0.004 * np.sin(np.arange(100) * 2.1)  # wiggles on the plateau
    loss = 2.3 + noise - 1.0 / (1 + np.exp(-(logs + 1.5) * 4)) + np.where(logs > 0, logs * 3, 0)
    result = analyse(lrs, loss.tolist(), loss.tolist(), "test", 1e-7, 10.0)
    assert 1e-3 < result.suggested_lr < 1.0, result.suggestions
