"""Fashion-MNIST: lookup order, the real files and their checksums, a damaged file,
and the training example run on it.

The real files come from ``$TINYNET_DATA/fashion-mnist`` or Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``); the tests
that need them skip, saying why, when neither has them.
"""

import dataclasses
import gzip
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, data_root
from dataset_helpers import write_fake_dataset

import tinynet
from tinynet.datasets import fashion_mnist
from tinynet.datasets.idx import CorruptFileError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
TRAIN_EXAMPLE = REPO / "examples" / "mnist_train.py"


@pytest.fixture(scope="module")
def real_fashion_dir() -> Path:
    folders = (data_root() / "fashion-mnist", DEBIAN_DIR)
    for folder in folders:
        if (folder / "train-images-idx3-ubyte.gz").is_file():
            return folder
    pytest.skip(
        f"real Fashion-MNIST not found in {' or '.join(map(str, folders))} "
        "(apt-get install dataset-fashion-mnist)"
    )


@pytest.fixture(scope="module")
def damaged_dir(real_fashion_dir, tmp_path_factory) -> Path:
    """The real files, except that one test label is changed to another class."""
    folder = tmp_path_factory.mktemp("damaged")
    for file in fashion_mnist.SPEC.files.values():
        name = file.name + ".gz"
        (folder / name).symlink_to(real_fashion_dir / name)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[8] = (payload[8] + 1) % 10  # the first label, after the 8-byte header
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(payload)))
    return folder


# ---------------------------------------------------------------- the real files


def test_real_files_pass_their_checksums(real_fashion_dir):
    (x, y), (xt, yt) = fashion_mnist.load_data(real_fashion_dir, download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == y.dtype == np.uint8
    # Published: 6,000 training and 1,000 test images of each of the 10 classes.
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10


def test_debian_folder_is_found_without_configuration(isolated):
    if not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
    files = fashion_mnist.find()
    assert files is not None and {p.parent for p in files.values()} == {DEBIAN_DIR}


def test_search_order_data_root_cache_then_system_folder(isolated, monkeypatch):
    system = isolated / "system" / "fashion-mnist"
    spec, _ = write_fake_dataset(system, fashion_mnist.SPEC, seed=3)
    spec = dataclasses.replace(spec, system_dirs=(system,))
    folders = [isolated / "data" / "fashion-mnist", spec.cache_dir()]
    for folder in folders:
        # The same arrays everywhere (seed 3), so the spec's checksums accept each.
        write_fake_dataset(folder, fashion_mnist.SPEC, seed=3)
    monkeypatch.setenv("TINYNET_DATA", str(isolated / "data"))
    for folder in [*folders, system]:
        files = spec.find()
        assert files is not None and {p.parent for p in files.values()} == {folder}
        for path in files.values():
            path.unlink()
    assert spec.find() is None
    assert spec.search_dirs() == [*folders, system]


def test_class_names_name_every_label():
    assert len(fashion_mnist.SPEC.class_names) == 10
    assert fashion_mnist.SPEC.class_names[0] == "T-shirt/top"
    assert fashion_mnist.SPEC.class_names[9] == "Ankle boot"


def test_a_spec_needs_the_four_files():
    files = dict(fashion_mnist.SPEC.files)
    del files["test_labels"]
    with pytest.raises(ValueError, match=r"fashion-mnist: files must have the keys"):
        dataclasses.replace(fashion_mnist.SPEC, files=files)


# ------------------------------------------------------------- a damaged file


def test_damaged_file_is_one_clear_line(damaged_dir):
    with pytest.raises(CorruptFileError) as info:
        fashion_mnist.load_data(damaged_dir)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"t10k-labels-idx1-ubyte\.gz: SHA-256 checksum mismatch", message)
    assert "fashion-mnist" in message


def test_example_reports_a_damaged_file_in_one_line(damaged_dir):
    result = subprocess.run(
        [sys.executable, str(TRAIN_EXAMPLE), "--dataset", "fashion",
         "--data-dir", str(damaged_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "t10k-labels-idx1-ubyte.gz: SHA-256 checksum mismatch" in lines[0]


# ------------------------------------------------------------ the example run


def test_example_trains_on_fashion_mnist(real_fashion_dir, tmp_path):
    """One epoch of the MLP on 500 training images, evaluated on all 10,000 test
    images. Measured: 0.518 test accuracy (seed 0); asserted >= 0.35 (chance: 0.10)."""
    out, plots = tmp_path / "fashion.npz", tmp_path / "plots"
    result = subprocess.run(
        [sys.executable, str(TRAIN_EXAMPLE), "--dataset", "fashion",
         "--limit", "500", "--epochs", "1", "--data-dir", str(real_fashion_dir),
         "--out", str(out), "--plots", str(plots), "--verbose", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy >= 0.35
    # The report names the classes: one row each in the per-class table.
    for name in fashion_mnist.SPEC.class_names:
        assert re.search(rf"^\s*{re.escape(name)}\s+\d\.\d{{4}}", result.stdout, re.M)
    assert sorted(p.name for p in plots.iterdir()) == [
        "confusion_matrix.png",
        "learning_curves.png",
        "misclassified.png",
    ]
    model = tinynet.load_model(out)
    assert model.metadata["dataset"] == "fashion-mnist"
    assert model.metadata["class_names"] == list(fashion_mnist.SPEC.class_names)
