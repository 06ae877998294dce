"""Data sets: MNIST and Fashion-MNIST (IDX files found locally or downloaded and
verified)."""

from . import fashion_mnist, mnist
from .idx import CorruptFileError
from .idx_dataset import DatasetNotFoundError, IdxDataset

__all__ = [
    "CorruptFileError",
    "DatasetNotFoundError",
    "IdxDataset",
    "fashion_mnist",
    "mnist",
]
