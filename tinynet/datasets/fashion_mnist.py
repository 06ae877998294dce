"""Fashion-MNIST: 70,000 28x28 grey photos of clothes in 10 classes, MNIST's format.

Zalando Research's drop-in replacement for MNIST (Xiao, Rasul and Vollgraf, 2017;
MIT licence; https://github.com/zalandoresearch/fashion-mnist): the same four IDX
file names, sizes and splits, with products instead of digits, and a much harder
test set. Searched in ``load_data(path)``'s folder if given, else
``$TINYNET_DATA/fashion-mnist``, the user cache ``~/.cache/tinynet/fashion-mnist``,
then ``/usr/share/datasets/fashion-mnist`` (Debian's and Ubuntu's
``dataset-fashion-mnist`` package); downloaded from :data:`SPEC`'s mirrors when none
has the four files, and always checked against the SHA-256 of the published payloads
(see :mod:`tinynet.datasets.idx_dataset`)::

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    # x: (60000, 28, 28) and (10000, 28, 28) uint8; y: uint8 classes 0-9
    fashion_mnist.SPEC.class_names[y_test[0]]  # 'Ankle boot'

The checksums are of the decompressed files. The publisher lists MD5s of its ``.gz``
files; Debian's package rewrites their gzip headers (it drops the file name and
sets the time stamp to the package's date), so its ``.gz`` bytes differ. With the
original headers put back (the file names and the 2017-08-31 time stamps), all four
of Debian's files reproduce the publisher's MD5s, so its payloads, and these
SHA-256s, are the publisher's.
"""

from __future__ import annotations

from pathlib import Path

from .idx_dataset import IdxDataset, IdxFile

__all__ = ["SPEC", "download", "find", "load_data"]

SPEC = IdxDataset(
    name="fashion-mnist",
    files={
        "train_images": IdxFile(
            "train-images-idx3-ubyte",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            47040016,
        ),
        "train_labels": IdxFile(
            "train-labels-idx1-ubyte",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            60008,
        ),
        "test_images": IdxFile(
            "t10k-images-idx3-ubyte",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            7840016,
        ),
        "test_labels": IdxFile(
            "t10k-labels-idx1-ubyte",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            10008,
        ),
    },
    # Keras' copy, the publisher's GitHub repository, then its own bucket (plain
    # HTTP: the checksums, not the transport, vouch for the bytes).
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
)

load_data = SPEC.load_data
find = SPEC.find
download = SPEC.download
