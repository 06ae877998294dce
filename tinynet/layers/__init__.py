"""Layers, and the fixed registry that rebuilds them from a saved config.

Nothing is imported or evaluated from a file: a config names a class by one of the
keys of ``LAYERS``, and anything else is refused.
"""

from __future__ import annotations

from typing import Any

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
    name = type(layer).__name__
    if LAYERS.get(name) is not type(layer):
        raise TypeError(f"{name} is not a registered tinynet layer and cannot be saved")
    return {"class_name": name, "config": layer.get_config()}


def layer_from_config(spec: Any) -> Layer:
    """Rebuild an (unbuilt) layer from ``{"class_name": ..., "config": {...}}``."""
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"}:
        raise ValueError(
            "a layer spec must be a dict with exactly the keys 'class_name' and "
            f"'config', got {spec!r}"
        )
    name, config = spec["class_name"], spec["config"]
    if name not in LAYERS:
        raise ValueError(
            f"unknown layer class {name!r}; known layers: {', '.join(sorted(LAYERS))}"
        )
    if not isinstance(config, dict):
        raise ValueError(f"config of layer {name!r} must be a dict, got {config!r}")
    try:
        return LAYERS[name](**config)
    except TypeError as err:
        raise ValueError(f"invalid config for layer {name!r}: {err}") from None


__all__ = ["LAYERS", "Layer", "layer_from_config", "layer_to_config"]
