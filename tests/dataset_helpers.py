"""Tiny fake IDX data sets, shared by the MNIST and Fashion-MNIST loader tests."""

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np

from tinynet.datasets import mnist
from tinynet.datasets.idx import encode_idx
from tinynet.datasets.idx_dataset import IdxDataset, IdxFile


def write_fake_dataset(
    folder: Path, spec: IdxDataset = mnist.SPEC, n_train=6, n_test=4, gz=True, seed=0
):
    """Write four small valid IDX files named as ``spec``'s into ``folder``.

    Returns ``spec`` with these files' checksums (so it accepts them) and the arrays.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    files = {}
    for key, file in spec.files.items():
        data = encode_idx(arrays[key])
        name = file.name + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        files[key] = IdxFile(file.name, hashlib.sha256(data).hexdigest(), len(data))
    return dataclasses.replace(spec, files=files), arrays
