"""The MNIST handwritten digits: find, verify, and (if needed) download.

Searched in ``load_data(path)``'s folder if given, else ``$TINYNET_DATA/mnist``,
then the user cache ``~/.cache/tinynet/mnist``; downloaded from :data:`SPEC`'s
mirrors when none has the four files, and always checked against the SHA-256 of the
original payloads (see :mod:`tinynet.datasets.idx_dataset`)::

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    # x: (60000, 28, 28) and (10000, 28, 28) uint8; y: uint8 digits 0-9
"""

from __future__ import annotations

from .idx_dataset import DatasetNotFoundError, IdxDataset, IdxFile

__all__ = ["SPEC", "MnistNotFoundError", "download", "find", "load_data"]

SPEC = IdxDataset(
    name="mnist",
    files={
        "train_images": IdxFile(
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47040016,
        ),
        "train_labels": IdxFile(
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60008,
        ),
        "test_images": IdxFile(
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7840016,
        ),
        "test_labels": IdxFile(
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10008,
        ),
    },
    # Public copies of the original gzipped files, tried in order.
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    class_names=tuple(str(digit) for digit in range(10)),
)

# The name MNIST's loader always raised; any data set's loader raises it now.
MnistNotFoundError = DatasetNotFoundError

load_data = SPEC.load_data
find = SPEC.find
download = SPEC.download
