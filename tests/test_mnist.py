"""MNIST lookup, verification and loading.

Tests marked by ``real_mnist`` read the real files from ``$TINYNET_DATA/mnist``
(default: ``../shared/datasets`` beside the repository) and skip with a reason
when they are absent. The rest use tiny fake MNIST files written to tmp_path.
"""

import dataclasses
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import write_fake_dataset

from tinynet.datasets import mnist
from tinynet.datasets.idx import CorruptFileError, encode_idx

REPO = Path(__file__).resolve().parents[1]


def real_mnist_dir() -> Path:
    root = os.environ.get("TINYNET_DATA") or str(REPO.parent / "shared" / "datasets")
    folder = Path(root) / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {folder} (set TINYNET_DATA)")
    return folder


# ---------------------------------------------------------------- real data


def test_real_mnist_via_tinynet_data(monkeypatch):
    folder = real_mnist_dir()
    monkeypatch.setenv("TINYNET_DATA", str(folder.parent))
    (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    # Published facts of the real MNIST (also in the data folder's README).
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_test).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    assert x_train.max() == 255 and x_train[:, 0, 0].max() == 0


def test_real_mnist_via_explicit_path():
    folder = real_mnist_dir()
    (_, y_train), _ = mnist.load_data(folder, download=False)
    assert np.bincount(y_train)[1] == 6742


# ------------------------------------------------------------- lookup order


def test_explicit_path_missing_files_names_folder_and_files(isolated):
    folder = isolated / "half"
    write_fake_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data(folder)
    msg = str(info.value)
    assert str(folder) in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg and "train-images-idx3-ubyte.gz" in msg
    assert "train-labels" not in msg


def test_explicit_path_does_not_fall_back(isolated, monkeypatch):
    spec, _ = write_fake_dataset(isolated / "data" / "mnist")
    monkeypatch.setenv("TINYNET_DATA", str(isolated / "data"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist"):
        spec.load_data(isolated / "nowhere")


def test_tinynet_data_before_cache(isolated, monkeypatch):
    spec, arrays = write_fake_dataset(isolated / "data" / "mnist", seed=1)
    write_fake_dataset(isolated / "cache" / "tinynet" / "mnist", seed=2)
    monkeypatch.setenv("TINYNET_DATA", str(isolated / "data"))
    (x, _), _ = spec.load_data(download=False)
    np.testing.assert_array_equal(x, arrays["train_images"])


def test_cache_honours_xdg_cache_home(isolated):
    spec, arrays = write_fake_dataset(
        isolated / "cache" / "tinynet" / "mnist", gz=False
    )
    (_, _), (x, y) = spec.load_data(download=False)
    np.testing.assert_array_equal(x, arrays["test_images"])
    np.testing.assert_array_equal(y, arrays["test_labels"])


def test_not_found_without_download_says_where_to_put_files(isolated):
    with pytest.raises(mnist.MnistNotFoundError) as info:
        mnist.load_data(download=False)
    msg = str(info.value)
    assert str(isolated / "cache" / "tinynet" / "mnist") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "TINYNET_DATA" in msg


# ------------------------------------------------------------- verification


def test_checksum_mismatch_names_file(isolated):
    # Structurally valid files whose content is not MNIST.
    write_fake_dataset(isolated / "fake")
    with pytest.raises(CorruptFileError, match=r"train-images.*(size|SHA-256)"):
        mnist.load_data(isolated / "fake")


def test_verify_false_loads_structurally_valid_copy(isolated):
    _, arrays = write_fake_dataset(isolated / "fake", n_train=3)
    (x, y), _ = mnist.load_data(isolated / "fake", verify=False)
    np.testing.assert_array_equal(x, arrays["train_images"])
    np.testing.assert_array_equal(y, arrays["train_labels"])


def test_sha_mismatch_with_right_size(isolated):
    spec, _ = write_fake_dataset(isolated / "fake")
    files = dict(spec.files)
    files["test_labels"] = dataclasses.replace(files["test_labels"], sha256="0" * 64)
    spec = dataclasses.replace(spec, files=files)
    with pytest.raises(CorruptFileError, match=r"t10k-labels.*SHA-256.*0000"):
        spec.load_data(isolated / "fake")


def test_image_and_label_counts_must_match(isolated):
    folder = isolated / "fake"
    write_fake_dataset(folder, n_train=5)
    labels = encode_idx(np.zeros(4, np.uint8))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(CorruptFileError, match=r"5 images.*4 labels"):
        mnist.load_data(folder, verify=False)


def test_corrupt_label_value_is_reported(isolated):
    folder = isolated / "fake"
    write_fake_dataset(folder)
    labels = encode_idx(np.array([1, 2, 3, 11], np.uint8))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(CorruptFileError, match=r"t10k-labels.*label 11"):
        mnist.load_data(folder, verify=False)
