"""Layers, and the fixed registry that rebuilds them from a saved config.

Nothing is imported or evaluated from a file: a config names a class by one of the
keys of ``LAYERS``, and anything else is rejected.
"""

from __future__ import annotations

from typing import Any

from ..registry import from_spec, to_spec
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm, Rescaling
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten

# Each layer module adds its classes here (import line + tuple entry below).
_LAYER_CLASSES: tuple[type[Layer], ...] = (
    # activations.py
    ReLU,
    LeakyReLU,
    Sigmoid,
    Tanh,
    Softmax,
    # dense.py
    Dense,
    # reshape.py, dropout.py, normalization.py
    Flatten,
    Dropout,
    BatchNorm,
    Rescaling,
    # conv.py, pooling.py
    Conv2D,
    MaxPool2D,
    AvgPool2D,
    GlobalAvgPool2D,
)

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in _LAYER_CLASSES}


def layer_to_config(layer: Layer) -> dict[str, Any]:
    """``{"class_name": "Dense", "config": {...}}`` for a registered layer."""
    return to_spec(layer, LAYERS, "layer")


def layer_from_config(spec: Any) -> Layer:
    """Rebuild an (unbuilt) layer from ``{"class_name": ..., "config": {...}}``."""
    return from_spec(spec, LAYERS, "layer")


__all__ = [
    "LAYERS",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Rescaling",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "layer_from_config",
    "layer_to_config",
]
