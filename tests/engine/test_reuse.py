"""Work the engine does once and reuses: the last validation pass (until the weights change)
and the CPU memory-format choice (per process and on disk)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.engine import fit, layout
from cnnexp.engine.trainer import Trainer
from cnnexp.recipe import load_recipe


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    recipe = load_recipe("digits", ["data.subset=200", "train.epochs=1"])
    return Trainer(recipe, build_data(recipe), torch.device("cpu"))


def test_validation_logits_are_reused_until_the_weights_change(trainer: Trainer) -> None:
    first, labels = trainer.predict_logits()
    again, _ = trainer.predict_logits()
    assert again is first  # no second pass over unchanged weights

    xb, yb = next(iter(trainer.train_batches))
    trainer.model.train()
    trainer.train_step(xb, yb)
    stepped, _ = trainer.predict_logits()
    assert stepped is not first and not torch.equal(stepped, first)

    # a train-mode forward alone moves BatchNorm's running statistics: a new pass too
    trainer.model.train()
    trainer.model(trainer.inputs(xb))
    assert trainer.predict_logits()[0] is not stepped
    assert not trainer.model.training  # left in eval mode, cached or not
    # and what is reused equals a fresh pass over the same weights
    cached = trainer.predict_logits()[0]
    trainer._val_cache = None
    assert torch.equal(trainer.predict_logits()[0], cached)
    assert len(labels) == trainer.data.n_val


def test_the_end_of_fit_predictions_are_the_last_epochs_evaluation() -> None:
    recipe = load_recipe("digits", ["data.subset=200", "train.epochs=2"])
    result = fit(recipe, data=build_data(recipe), device="cpu")
    logits, labels = result.trainer.predict_logits()
    acc = float((logits.argmax(1) == labels).float().mean())
    assert acc == pytest.approx(result.history[-1]["val_acc"])


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(layout.CACHE_ENV, raising=False)
    monkeypatch.setattr(layout, "_CHOSEN", {})
    return tmp_path / "cnnexp" / "layout.json"


def _probe() -> bool:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.LazyLinear(3))
    model(torch.zeros(1, 1, 8, 8))
    return layout.choose_channels_last("auto", model, torch.zeros(4, 1, 8, 8),
                                       torch.device("cpu"))


def test_the_cpu_layout_choice_is_kept_on_disk_and_read_back(cache_home: Path) -> None:
    measured = _probe()
    saved = json.loads(cache_home.read_text())
    assert list(saved.values()) == [measured]

    # a new process (empty in-process cache) takes the disk's answer without measuring:
    # flipped on disk, the flipped answer comes back
    key = next(iter(saved))
    cache_home.write_text(json.dumps({key: not measured}))
    layout._CHOSEN.clear()
    assert _probe() is (not measured)


def test_a_corrupt_or_disabled_layout_cache_only_means_measuring(
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("{not json")
    assert isinstance(_probe(), bool)
    assert isinstance(json.loads(cache_home.read_text()), dict)  # rewritten whole

    monkeypatch.setenv(layout.CACHE_ENV, "off")
    cache_home.unlink()
    layout._CHOSEN.clear()
    _probe()
    assert not cache_home.exists()


def test_an_explicit_layout_is_never_measured_or_cached(cache_home: Path) -> None:
    model = torch.nn.Conv2d(1, 1, 3)
    assert layout.choose_channels_last(True, model, torch.zeros(1, 1, 4, 4),
                                       torch.device("cpu")) is True
    assert not cache_home.exists()
