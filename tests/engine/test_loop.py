"""The engine on its own: schedules, early stopping, EMA, optimisers, callbacks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine import Callback, fit
from cnnexp.engine.optim import Schedule, build_optimizer
from cnnexp.recipe import load_recipe


@pytest.fixture(scope="module")
def digits():
    return build_data(load_recipe("digits", ["data.subset=300"]))


def quick(*overrides: str):
    return load_recipe("digits", ["data.subset=300", "train.epochs=2", *overrides])


@pytest.mark.parametrize("opt", ["sgd", "sgd_step", "adam", "adamw", "rmsprop", "adagrad",
                                 "onecycle"])
def test_every_optimiser_learns(digits, opt: str) -> None:
    result = fit(quick(f"opt={opt}", "train.epochs=3"), data=digits, device="cpu")
    assert result.status == "completed"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] or \
        result.final["val_acc"] > 0.5


def _lrs(schedule: str, **kw) -> list[float]:
    recipe = load_recipe("digits", [f"opt.schedule={schedule}", "opt.lr=1.0",
                                    *[f"opt.{k}={v}" for k, v in kw.items()]])
    opt = build_optimizer(recipe.opt, torch.nn.Linear(2, 2))
    sched = Schedule(recipe.opt, opt, steps_per_epoch=10, epochs=4)
    lrs = []
    for _ in range(40):
        lrs.append(sched.lr)
        opt.step()
        sched.step()
    return lrs


def test_schedules_shape() -> None:
    cos = _lrs("cosine", warmup_epochs=1)
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert cos[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(cos[10:]))
    step = _lrs("step", step_epochs=2, gamma=0.5, warmup_epochs=0)
    assert step[0] == 1.0 and step[19] == 1.0 and step[20] == 0.5
    one = _lrs("onecycle")
    assert max(one) == pytest.approx(1.0, rel=0.05) and one[0] < 0.1 and one[-1] < 0.01


def test_weight_decay_skips_biases_and_norms() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    opt = build_optimizer(load_recipe("digits").opt, model)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def test_early_stopping_on_val_loss(digits) -> None:
    # lr far too high for adam: val loss stops improving quickly
    result = fit(quick("opt=adam", "opt.lr=0.5", "reg.patience=1", "train.epochs=30"),
                 data=digits, device="cpu")
    assert result.status in ("early_stopped", "diverged")
    assert len(result.history) < 30


def test_callback_can_stop_and_sees_every_epoch(digits) -> None:
    seen = []

    class StopAfterTwo(Callback):
        def on_epoch_end(self, state, metrics):
            seen.append(metrics["epoch"])
            if state.epoch == 2:
                state.stop, state.stop_reason = True, "enough"

    result = fit(quick("train.epochs=5"), data=digits, device="cpu", callbacks=[StopAfterTwo()])
    assert seen == [1, 2] and result.status == "stopped" and result.reason == "enough"


def test_best_state_is_the_best_epoch(digits) -> None:
    result = fit(quick("train.epochs=3"), data=digits, device="cpu")
    best = max(result.history, key=lambda h: (h["val_acc"], -h["val_loss"]))
    assert result.best_epoch == best["epoch"] and result.best_state is not None
    assert result.best_val_acc == best["val_acc"]


def test_ema_label_smoothing_tta_mixup_l1_and_clipping_run(digits) -> None:
    result = fit(quick("reg.ema=0.9", "reg.label_smoothing=0.1", "aug.tta=true",
                       "aug=mixup", "reg.l1=1e-5", "opt.grad_clip=1.0"),
                 data=digits, device="cpu")
    assert result.status == "completed" and math.isfinite(result.final["val_loss"])


def test_divergence_is_detected_within_one_epoch(digits) -> None:
    result = fit(quick("opt.lr=1e6", "train.epochs=5"), data=digits, device="cpu")
    assert result.status == "diverged" and len(result.history) == 1
    assert "non-finite or >" in result.reason


def test_trainer_public_steps_compose_to_train_step(digits) -> None:
    """forward_loss + backward + step is exactly one train_step (same seed, same batch)."""
    from cnnexp.engine import Trainer

    recipe = load_recipe("digits", ["data.subset=300", "aug=none"])
    a, b = Trainer(recipe, digits, torch.device("cpu")), Trainer(recipe, digits,
                                                                 torch.device("cpu"))
    xb, yb = next(iter(a.train_batches))
    a.train_step(xb, yb)
    x, target = b.aug.train_batch(xb, yb)
    loss, _ = b.forward_loss(x, target)
    b.backward(loss)
    b.step()
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    logits, labels = b.predict_logits("val")
    assert logits.shape == (len(labels), digits.num_classes)


def test_subnormals_flushed_while_training_and_restored_after(digits) -> None:
    """Flushing subnormals is processor-wide; outside the training steps floats stay IEEE
    (statistics, Optuna and property tests in the same process rely on it)."""
    from cnnexp.engine.denormals import flushing

    seen: list[bool] = []

    class Watch(Callback):
        def on_batch_end(self, state, batch: int) -> None:
            seen.append(flushing())

    assert not flushing()
    fit(quick("train.epochs=1"), data=digits, device="cpu", callbacks=[Watch()])
    assert seen and all(seen)
    assert not flushing()
