"""MNIST-family IDX files from any folder: flat (Debian, the datasets' own repositories) or
torchvision's layout, gzipped or not; bad files are one-line bad input naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cnnexp.data import build_data
from cnnexp.errors import BadInput
from cnnexp.recipe import load_recipe

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install "
           "dataset-fashion-mnist; .ci/run installs it)")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_set(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True,
              seed: int = 0) -> None:
    """A tiny MNIST-shaped data set: 28x28 images whose mean brightness encodes the label."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = (rng.integers(0, 40, (n, 28, 28)) + y[:, None, None] * 20).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def load(root: Path, name: str = "fashion_mnist", *extra: str):
    return build_data(load_recipe("digits", [f"data={name}", f"data.root={root}", *extra]))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_reads_flat_and_torchvision_layouts(tmp_path: Path, gz: bool, layout: str) -> None:
    folder = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    write_set(folder, gz=gz)
    data = load(tmp_path)
    assert data.n_train + data.n_val == 60 and data.n_test == 20
    assert data.test_origin == "official test set"
    assert data.classes[0] == "T-shirt/top" and data.train_x.shape[1:] == (1, 28, 28)
    mnist_folder = tmp_path / "m" if layout == "flat" else tmp_path / "m" / "MNIST" / "raw"
    write_set(mnist_folder, gz=gz)
    assert load(tmp_path / "m", "mnist").classes == [str(i) for i in range(10)]


def _corrupt(folder: Path, how: str) -> str:
    """Spoil one file; returns the fragment the error must contain."""
    images = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if how == "truncated":
        images.write_bytes(gzip.compress(raw[:1000]))
        return "train-images-idx3-ubyte.gz: truncated IDX images file"
    if how == "magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))
        return "train-images-idx3-ubyte.gz: wrong magic number 0x00000801"
    if how == "count":
        labels = folder / "train-labels-idx1-ubyte.gz"
        y = gzip.decompress(labels.read_bytes())
        labels.write_bytes(gzip.compress(idx_bytes(np.frombuffer(y[8:-5], np.uint8))))
        return "holds 60 images but"
    if how == "gzip":
        images.write_bytes(images.read_bytes()[:40])
        return "not a readable gzip file"
    if how == "missing":
        (folder / "t10k-labels-idx1-ubyte.gz").unlink()
        return "missing t10k-labels-idx1-ubyte[.gz]"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "magic", "count", "gzip", "missing"])
def test_bad_files_are_bad_input_naming_the_file(tmp_path: Path, how: str) -> None:
    write_set(tmp_path)
    expected = _corrupt(tmp_path, how)
    with pytest.raises(BadInput) as err:
        load(tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_folder_without_the_files_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "no Fashion-MNIST IDX files" in msg and str(tmp_path / "FashionMNIST" / "raw") in msg
    assert "dataset-fashion-mnist" in msg


@needs_debian
def test_debian_package_is_found_without_a_root() -> None:
    data = build_data(load_recipe("fashion_mnist"))
    assert data.n_train + data.n_val == 60_000 and data.n_test == 10_000
    assert "/usr/share/datasets/fashion-mnist" in data.source
    assert abs(float(data.mean[0]) - 0.286) < 0.01
