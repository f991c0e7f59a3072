"""Datasets, splits, batching and batched augmentation."""

from __future__ import annotations

import pytest
import torch

from cnnexp.data import build_data
from cnnexp.data.augment import Augmenter, cutout, translate
from cnnexp.data.bundle import stratified_split
from cnnexp.data.loader import Batches
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe
from cnnexp.schema import AugCfg


def test_digits_is_embedded_split_and_normalised() -> None:
    data = build_data(load_recipe("digits"))
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (1, 8, 8)
    # 20% held out as the test split first, then 20% of the rest is validation
    assert data.n_train + data.n_val + data.n_test == 1797 and data.n_test == 359
    assert abs(data.n_val - 0.2 * (1797 - 359)) < 10
    assert set(data.train_y.tolist()) == set(range(10)) == set(data.val_y.tolist())
    x = (data.train_x.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2


def test_split_is_stratified_seeded_and_disjoint() -> None:
    y = torch.arange(1000) % 4
    tr, va = stratified_split(y, 0.25, seed=3)
    tr2, va2 = stratified_split(y, 0.25, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert not set(tr.tolist()) & set(va.tolist()) and len(tr) + len(va) == 1000
    assert torch.bincount(y[va]).tolist() == [63, 63, 63, 63] or len(set(
        torch.bincount(y[va]).tolist())) == 1


def test_shapes_deterministic_and_configurable() -> None:
    r = load_recipe("shapes", ["data.num_samples=200", "data.image_size=16",
                               "data.num_classes=15"])
    a, b = build_data(r), build_data(r)
    assert torch.equal(a.train_x, b.train_x) and a.train_x.shape[1:] == (3, 16, 16)
    assert a.num_classes == 15 and int(a.train_y.max()) == 14


def test_shapes_too_many_classes_is_bad_input() -> None:
    with pytest.raises(BadInput, match="at most 60 classes"):
        build_data(load_recipe("shapes", ["data.num_classes=100", "data.num_samples=200"]))


def test_resize_and_subset() -> None:
    data = build_data(load_recipe("digits", ["data.resize=16", "data.subset=100"]))
    assert data.train_x.shape == (100, 1, 16, 16)


def test_missing_torchvision_root_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        build_data(load_recipe("cifar10_resnet20", [f"data.root={tmp_path / 'nope'}"]))
    with pytest.raises(BadInput, match="cifar10 not found under"):
        build_data(load_recipe("cifar10_resnet20", [f"data.root={tmp_path}"]))


def _augmenter(**kw) -> Augmenter:
    gen = torch.Generator().manual_seed(0)
    return Augmenter(AugCfg(**kw), torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25] * 3), 10, gen)


@pytest.mark.parametrize("cfg", [
    {"flip": True}, {"translate": 4}, {"scale": (0.8, 1.2)}, {"rotation": 15.0},
    {"color_jitter": 0.4}, {"cutout": 8},
    {"flip": True, "translate": 4, "scale": (0.8, 1.2), "color_jitter": 0.3, "cutout": 8},
])
def test_augmentation_keeps_shape_dtype_and_varies_per_sample(cfg: dict) -> None:
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8).expand(64, -1, -1, -1)
    y = torch.zeros(64, dtype=torch.long)
    out, target = _augmenter(**cfg).train_batch(x.clone(), y)
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(target, y)
    # identical inputs come out different: randomness is per sample, not per batch
    distinct = len({hash(o.numpy().tobytes()) for o in out})
    assert distinct == 2 if cfg == {"flip": True} else distinct > 8


def test_translate_is_a_shift_of_the_image() -> None:
    x = torch.arange(64.0).view(1, 1, 8, 8)
    out = translate(x, 2, torch.tensor([[0.0, 0.99]]))  # shift rows by -2, cols by +2
    assert torch.equal(out[0, 0, 2:, :6], x[0, 0, :6, 2:])


def test_cutout_zeroes_a_square() -> None:
    out = cutout(torch.ones(2, 1, 16, 16), 4, torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    assert int((out == 0).sum()) == 2 * 16


def test_mixup_and_cutmix_give_soft_targets_summing_to_one() -> None:
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    y = torch.randint(0, 10, (32,))
    for cfg in ({"mixup": 0.4}, {"cutmix": 1.0}):
        out, target = _augmenter(**cfg).train_batch(x, y)
        assert target.shape == (32, 10) and torch.allclose(target.sum(1), torch.ones(32))
        assert out.shape == (32, 3, 16, 16)


def test_batches_cover_the_split_once_per_epoch() -> None:
    data = build_data(load_recipe("digits"))
    gen = torch.Generator().manual_seed(0)
    batches = Batches(data, "train", 100, torch.device("cpu"), True, gen, drop_last=True)
    seen = torch.cat([y for _, y in batches])
    assert len(seen) == batches.n_images == (data.n_train // 100) * 100
    val = torch.cat([y for _, y in Batches(data, "val", 64, torch.device("cpu"), False)])
    assert torch.equal(val, data.val_y)


@pytest.mark.parametrize(("dataset", "shown"), [
    ("cifar10", "[Errno -3] Temporary failure in name resolution"),
    ("svhn", "[Errno -3] Temporary failure in name resolution"),
])
def test_download_offline_is_bad_input(tmp_path, monkeypatch: pytest.MonkeyPatch, dataset: str,
                                       shown: str) -> None:
    import urllib.error
    import urllib.request

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    recipe = load_recipe("digits", [f"data={dataset}", f"data.root={tmp_path / 'dl'}",
                                    "data.download=true"])
    with pytest.raises(BadInput) as exc:
        build_data(recipe)
    assert str(exc.value) == (f"cannot download {dataset} into '{tmp_path / 'dl'}' ({shown}): "
                              "check the network, or put the files there and set "
                              "data.download=false")


def _write_image(path, mode: str, fmt: str, size: int = 12) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    pixels = np.random.default_rng(len(str(path))).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path, format=fmt)


def test_imagefolder_decodes_every_file_once_when_built(tmp_path) -> None:
    """JPEG (checked at reduced scale), PNG and greyscale files all pass the build-time check;
    one truncated file is named as bad input before any training."""
    for k in range(3):
        _write_image(tmp_path / "cats" / f"{k}.jpg", "RGB", "JPEG", size=64)
        _write_image(tmp_path / "dogs" / f"{k}.png", "L", "PNG")
    data = build_data(load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}",
                                             "data.resize=8", "data.num_workers=0"]))
    assert data.classes == ["cats", "dogs"] and data.n_train + data.n_val + data.n_test == 6
    assert data.n_test == 2 and "held out 20%" in data.test_origin
    jpeg = (tmp_path / "cats" / "0.jpg").read_bytes()
    (tmp_path / "cats" / "0.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(BadInput, match=r"unreadable image .*cats/0\.jpg: image file is truncated"):
        build_data(load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}"]))


def test_imagefolder_uses_a_test_folder_as_the_test_split(tmp_path) -> None:
    for split, n in (("train", 5), ("test", 2)):
        for k in range(n):
            _write_image(tmp_path / split / "cats" / f"{k}.png", "RGB", "PNG")
            _write_image(tmp_path / split / "dogs" / f"{k}.png", "RGB", "PNG")
    data = build_data(load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}",
                                             "data.num_workers=0"]))
    assert data.classes == ["cats", "dogs"] and data.n_train + data.n_val == 10
    assert data.n_test == 4 and data.test_origin == "the test/ folder"
    labels = [int(data.test().dataset[i][1]) for i in range(4)]
    assert sorted(labels) == [0, 0, 1, 1]
    _write_image(tmp_path / "test" / "birds" / "0.png", "RGB", "PNG")
    with pytest.raises(BadInput, match="test/ has class folder 'birds' that train/ does not"):
        build_data(load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}"]))


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    for c, level in (("dark", 8000), ("light", 56000)):  # both > 255: convert("L") clips both
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.fromarray(np.full((8, 8), level, dtype=np.uint16)).save(tmp_path / c / f"{i}.png")
    data = build_data(load_recipe("digits", ["data=imagefolder", f"data.path={tmp_path}",
                                             "data.resize=null", "data.test_fraction=0",
                                             "data.val_fraction=0.25"]))
    assert data.channels == 1
    x, y = data.train_set[0]
    expected = {0: round(8000 / 257), 1: round(56000 / 257)}[y]  # classes sorted: dark, light
    assert int(x.max()) == int(x.min()) == expected
