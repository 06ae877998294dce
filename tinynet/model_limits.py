"""What a saved model may ask for, checked before anything is built or read.

A model file is a small JSON config plus arrays, and the config decides how much
memory and time loading costs: ``Dense(250000)`` on 1000 inputs asks for 1 GB in a
100-byte config. So the loader parses the config within fixed limits, constructs the
layers (constructors only check their arguments; nothing is allocated), and works out
from those layers, without building them, every weight the model will have and the
size of every activation. Those expected weights are compared with the ``.npy``
headers of the file before a single array is built or read.

The limits are far above any model tinynet trains (the shipped CNN: 21 layers,
198k weights, a 3.4 KB config nested 5 deep) and far below what hurts a laptop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .kernels import window_geometry
from .layers.base import Layer

__all__ = [
    "MAX_ACTIVATION_VALUES",
    "MAX_CONFIG_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_LAYERS",
    "MAX_MULTIPLY_ADDS",
    "MAX_UNITS",
    "MAX_WEIGHTS",
    "MAX_WINDOW",
    "check_weight_values",
    "expected_weights",
    "parse_config",
]

MAX_CONFIG_CHARS = 1_000_000
MAX_JSON_DEPTH = 32
MAX_LAYERS = 1_000
MAX_UNITS = 65_536  # Dense units and Conv2D filters
MAX_WINDOW = 255  # kernel and pool sizes, strides
MAX_ACTIVATION_VALUES = 1 << 24  # per example, for the input and every layer output
MAX_WEIGHTS = 1 << 28  # parameters and buffers: 1 GiB in float32
MAX_MULTIPLY_ADDS = 1 << 32  # per example: a few seconds on one core

Shape = tuple[int, ...]

_SYNTAX = re.compile(r'["\\\[\]{}]')


def parse_config(text: str, source: str) -> dict[str, Any]:
    """Parse a model's JSON config within ``MAX_CONFIG_CHARS`` and ``MAX_JSON_DEPTH``.

    Depth is measured on the text before parsing, so a deeply nested file is
    refused with a message instead of a RecursionError. NaN and infinities (which
    JSON does not allow) are refused too.
    """
    if len(text) > MAX_CONFIG_CHARS:
        raise ValueError(
            f"{source}: the config has {len(text):,} characters, over the limit of "
            f"{MAX_CONFIG_CHARS:,}"
        )
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(
            f"{source}: the config nests deeper than the limit of {MAX_JSON_DEPTH}"
        )
    try:
        config = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite_float
        )
    except ValueError as err:  # JSONDecodeError, or an int of > 4300 digits
        raise ValueError(f"{source}: the config is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: the config must be a JSON object")
    return config


def _nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside strings, in one pass over the syntax."""
    depth = deepest = 0
    in_string, escaped_at = False, -1
    for match in _SYNTAX.finditer(text):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return depth
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a float")
    return value


# ------------------------------------------------------------- architecture
def expected_weights(
    layers: Sequence[Layer], input_shape: Sequence[int]
) -> dict[str, Shape]:
    """Every weight a model of these (unbuilt) layers will have, without building it.

    Returns ``{"param/0.W": (784, 128), "buffer/1.moving_var": (128,), ...}``,
    keyed as ``saving`` stores them.

    Raises
    ------
    ValueError
        Naming the layer and the limit: more than ``MAX_LAYERS`` layers, units,
        filters or windows over their limits, an input or activation of more than
        ``MAX_ACTIVATION_VALUES`` per example, more than ``MAX_WEIGHTS`` weights or
        ``MAX_MULTIPLY_ADDS`` per example, or an input shape a layer cannot take.
    """
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"{len(layers):,} layers, over the limit of {MAX_LAYERS:,}")
    shape = _input_shape(input_shape)
    weights: dict[str, Shape] = {}
    multiply_adds = 0
    for i, layer in enumerate(layers):
        rule = _RULES.get(type(layer).__name__)
        who = f"layer {i} ({layer.describe()})"
        if rule is None:
            raise ValueError(f"{who}: no shape rule for {type(layer).__name__}")
        shape, own = rule(layer, shape, who)
        _check_size(f"{who}: output", math.prod(shape), MAX_ACTIVATION_VALUES)
        for key, weight_shape in own.items():
            kind, _, name = key.partition("/")
            weights[f"{kind}/{i}.{name}"] = weight_shape
        if "param/W" in own:  # each output position costs all of W
            multiply_adds += math.prod(own["param/W"]) * math.prod(shape[:-1])
    total = sum(map(math.prod, weights.values()))
    _check_size("the model's weights", total, MAX_WEIGHTS)
    _check_size("multiply-adds per example", multiply_adds, MAX_MULTIPLY_ADDS)
    return weights


def _check_size(what: str, count: int, limit: int) -> None:
    if count > limit:
        raise ValueError(f"{what}: {count:,} values, over the limit of {limit:,}")


def _input_shape(input_shape: Any) -> Shape:
    if (
        not isinstance(input_shape, list | tuple)
        or not 1 <= len(input_shape) <= 3
        or not all(_is_int(d) and d > 0 for d in input_shape)
    ):
        raise ValueError(
            f"input_shape must be 1 to 3 positive ints, got {str(input_shape)[:80]}"
        )
    _check_size("input_shape", math.prod(input_shape), MAX_ACTIVATION_VALUES)
    return tuple(int(d) for d in input_shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _at_most(who: str, what: str, value: int | Sequence[int], limit: int) -> None:
    if max(value if isinstance(value, Sequence) else [value]) > limit:
        raise ValueError(f"{who}: {what} {value} is over the limit of {limit:,}")


def _rank(who: str, shape: Shape, rank: int, expected: str) -> None:
    if len(shape) != rank:
        raise ValueError(f"{who}: expects inputs of shape {expected}, gets {shape}")


# (layer, input shape, who) -> (output shape, {"param/W": shape, "buffer/...": ...})
Rule = Callable[[Any, Shape, str], tuple[Shape, dict[str, Shape]]]


def _dense(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    _rank(who, shape, 1, "(features,)")
    _at_most(who, "units", layer.units, MAX_UNITS)
    own: dict[str, Shape] = {"param/W": (shape[0], layer.units)}
    if layer.use_bias:
        own["param/b"] = (layer.units,)
    return (layer.units,), own


def _windows(layer: Any, shape: Shape, who: str, window: Any) -> Shape:
    """Output (height, width) of a sliding window; Keras' "valid"/"same" rule."""
    _rank(who, shape, 3, "(height, width, channels)")
    _at_most(who, "window", window, MAX_WINDOW)
    _at_most(who, "strides", layer.strides, MAX_WINDOW)
    out = [
        window_geometry(size, k, s, layer.padding)[0]
        for size, k, s in zip(shape[:2], window, layer.strides, strict=True)
    ]
    if min(out) <= 0:
        raise ValueError(f"{who}: window {tuple(window)} is larger than {shape[:2]}")
    return tuple(out)


def _conv(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    height, width = _windows(layer, shape, who, layer.kernel_size)
    _at_most(who, "filters", layer.filters, MAX_UNITS)
    own: dict[str, Shape] = {"param/W": (*layer.kernel_size, shape[2], layer.filters)}
    if layer.use_bias:
        own["param/b"] = (layer.filters,)
    return (height, width, layer.filters), own


def _pool(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    return (*_windows(layer, shape, who, layer.pool_size), shape[2]), {}


def _global_pool(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    _rank(who, shape, 3, "(height, width, channels)")
    return (shape[2],), {}


def _flatten(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    return (math.prod(shape),), {}


def _batch_norm(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    names = ("param/gamma", "param/beta", "buffer/moving_mean", "buffer/moving_var")
    return shape, dict.fromkeys(names, (shape[-1],))


def _same(layer: Any, shape: Shape, who: str) -> tuple[Shape, dict[str, Shape]]:
    return shape, {}


# Keyed by the registry's class names (tinynet.layers.LAYERS); a layer class
# without a rule cannot be loaded, which the registry test catches.
_RULES: dict[str, Rule] = {
    "Dense": _dense,
    "Conv2D": _conv,
    "MaxPool2D": _pool,
    "AvgPool2D": _pool,
    "GlobalAvgPool2D": _global_pool,
    "Flatten": _flatten,
    "BatchNorm": _batch_norm,
    **dict.fromkeys(
        ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Rescaling"],
        _same,
    ),
}


# ------------------------------------------------------------------- values
def check_weight_values(source: str, arrays: dict[str, np.ndarray]) -> None:
    """Refuse weights no trained model has: a negative BatchNorm variance (its
    ``sqrt(var + eps)`` would be NaN). Non-finite values are refused on copy."""
    for key, value in arrays.items():
        if key.endswith(".moving_var") and np.any(value < 0):
            raise ValueError(
                f"{source}: entry {key!r} holds a negative variance "
                f"({float(np.min(value)):g})"
            )
