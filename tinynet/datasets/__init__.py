"""Data sets: MNIST (IDX files found locally or downloaded and verified)."""

from . import mnist
from .idx import CorruptFileError

__all__ = ["CorruptFileError", "mnist"]
