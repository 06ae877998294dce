"""Data sets: MNIST and Fashion-MNIST (IDX files found locally or downloaded and
verified)."""

from . import fashion_mnist, mnist
from .idx import CorruptFileError
from .idx_dataset import DatasetNotFoundError, IdxDataset

#: The data sets by the short name the example and the benchmarks take
#: (``--dataset``), and the title a report gives each.
BY_NAME: dict[str, IdxDataset] = {"mnist": mnist.SPEC, "fashion": fashion_mnist.SPEC}
TITLES: dict[str, str] = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}

__all__ = [
    "BY_NAME",
    "TITLES",
    "CorruptFileError",
    "DatasetNotFoundError",
    "IdxDataset",
    "fashion_mnist",
    "mnist",
]
