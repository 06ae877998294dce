"""Layer-by-layer translation between tinynet and Keras 3, both ways, and the
weights that go with it.

The two libraries share the layout: NHWC maps, Dense kernels ``(in, out)``, Conv2D
kernels ``(kh, kw, cin, cout)``, the same "same"-padding rule, BatchNorm's moving
statistics with the same momentum convention. So every weight is copied as it is,
with no transpose, and each layer maps onto its twin by its constructor arguments.
Only exact Keras classes are accepted on import (a subclass may compute something
else), and only their plain configurations (channels last, no dilation, ...);
anything else is refused with a message naming the Keras layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from ..layers import activations
from ..layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.dropout import Dropout
from ..layers.normalization import BatchNorm, Rescaling
from ..layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from ..layers.reshape import Flatten

K = keras.layers

# ------------------------------------------------------------ tinynet -> Keras
#: The activation layers Keras spells ``Activation(name)``.
_KERAS_ACTIVATION_NAMES: dict[type[Layer], str] = {Sigmoid: "sigmoid", Tanh: "tanh"}


def _activation_layer(layer: Layer, name: str | None, dtype: str) -> Any:
    """The Keras layer of a tinynet activation layer."""
    if type(layer) is LeakyReLU:
        return K.LeakyReLU(negative_slope=layer.alpha, name=name, dtype=dtype)
    if type(layer) is Softmax:
        return K.Softmax(axis=-1, name=name, dtype=dtype)
    if type(layer) is ReLU:
        return K.ReLU(name=name, dtype=dtype)
    if type(layer) in _KERAS_ACTIVATION_NAMES:
        keras_name = _KERAS_ACTIVATION_NAMES[type(layer)]
        return K.Activation(keras_name, name=name, dtype=dtype)
    raise _no_keras_twin(layer)


def _with_activation(main: Any, layer: Dense | Conv2D, dtype: str) -> list[Any]:
    """``main`` then, when the layer owns one, its activation as a Keras layer (so a
    LeakyReLU keeps its slope and a Softmax its axis)."""
    if layer.activation is None:
        return [main]
    kind = type(layer.activation).__name__.lower()
    return [main, _activation_layer(layer.activation, f"{layer.name}_{kind}", dtype)]


def keras_layers_for(layer: Layer, dtype: str) -> list[Any]:
    """The Keras layer(s) computing what ``layer`` computes (weights not set).

    Raises
    ------
    ValueError
        If ``layer`` is of a class without a Keras twin, naming it.
    """
    name, kind = layer.name, type(layer)
    # ``type(layer) is``, not isinstance: a subclass may compute something else.
    if type(layer) is Dense:
        dense = K.Dense(layer.units, use_bias=layer.use_bias, name=name, dtype=dtype)
        return _with_activation(dense, layer, dtype)
    if type(layer) is Conv2D:
        conv = K.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            use_bias=layer.use_bias,
            name=name,
            dtype=dtype,
        )
        return _with_activation(conv, layer, dtype)
    if type(layer) is MaxPool2D or type(layer) is AvgPool2D:
        pool = K.MaxPooling2D if kind is MaxPool2D else K.AveragePooling2D
        return [
            pool(
                layer.pool_size,
                strides=layer.strides,
                padding=layer.padding,
                name=name,
                dtype=dtype,
            )
        ]
    if type(layer) is BatchNorm:
        return [
            K.BatchNormalization(
                momentum=layer.momentum, epsilon=layer.epsilon, name=name, dtype=dtype
            )
        ]
    if type(layer) is Rescaling:
        return [K.Rescaling(layer.scale, layer.offset, name=name, dtype=dtype)]
    if type(layer) is Dropout:
        return [K.Dropout(layer.rate, name=name, dtype=dtype)]
    if kind is Flatten:
        return [K.Flatten(name=name, dtype=dtype)]
    if kind is GlobalAvgPool2D:
        return [K.GlobalAveragePooling2D(name=name, dtype=dtype)]
    if kind in activations.ACTIVATIONS.values():
        return [_activation_layer(layer, name, dtype)]
    raise _no_keras_twin(layer)


def _no_keras_twin(layer: Layer) -> ValueError:
    return ValueError(
        f"to_keras: {layer.describe()} is a {type(layer).__name__}, which has no "
        "Keras equivalent"
    )


def keras_weights_of(layer: Layer) -> list[np.ndarray]:
    """A tinynet layer's arrays in the order Keras' ``set_weights`` takes them."""
    if type(layer) is BatchNorm:
        return [
            layer.params["gamma"],
            layer.params["beta"],
            layer.buffers["moving_mean"],
            layer.buffers["moving_var"],
        ]
    return [layer.params[k] for k in ("W", "b") if k in layer.params]


# ------------------------------------------------------------ Keras -> tinynet
def _refuse(klayer: Any, why: str) -> ValueError:
    return ValueError(
        f"from_keras: Keras layer {klayer.name!r} ({type(klayer).__name__}) {why}"
    )


def _activation(klayer: Any, config: dict[str, Any]) -> Any:
    """A tinynet activation argument for a Keras ``activation`` config entry."""
    name = config.get("activation")
    if name in (None, "linear"):
        return None
    if name == "leaky_relu":
        # keras.activations.leaky_relu's default slope (the layer's is 0.3).
        return LeakyReLU(alpha=0.2)
    if name in ("relu", "sigmoid", "tanh", "softmax"):
        return name
    raise _refuse(klayer, f"uses the activation {name!r}, which tinynet lacks")


def _require(klayer: Any, config: dict[str, Any], **expected: Any) -> None:
    """Refuse options tinynet does not implement (channels first, dilation, ...)."""
    for key, want in expected.items():
        got = config.get(key, want)
        # A config read back from a .keras file has lists where Keras has tuples.
        got = tuple(got) if isinstance(got, list) else got
        if got != want:
            raise _refuse(klayer, f"has {key}={got!r}; tinynet supports {want!r}")


def _from_dense(klayer: Any, c: dict[str, Any]) -> Layer:
    return Dense(c["units"], activation=_activation(klayer, c), use_bias=c["use_bias"])


def _from_conv2d(klayer: Any, c: dict[str, Any]) -> Layer:
    _require(klayer, c, data_format="channels_last", dilation_rate=(1, 1), groups=1)
    if c["padding"] not in ("valid", "same"):
        raise _refuse(klayer, f"has padding={c['padding']!r}")
    return Conv2D(
        c["filters"],
        c["kernel_size"],
        strides=c["strides"],
        padding=c["padding"],
        activation=_activation(klayer, c),
        use_bias=c["use_bias"],
    )


def _from_pool(
    cls: type[MaxPool2D] | type[AvgPool2D],
) -> Callable[[Any, dict[str, Any]], Layer]:
    def convert(klayer: Any, c: dict[str, Any]) -> Layer:
        _require(klayer, c, data_format="channels_last")
        return cls(c["pool_size"], strides=c["strides"], padding=c["padding"])

    return convert


def _from_global_avg_pool(klayer: Any, c: dict[str, Any]) -> Layer:
    _require(klayer, c, data_format="channels_last", keepdims=False)
    return GlobalAvgPool2D()


def _from_batch_norm(klayer: Any, c: dict[str, Any]) -> Layer:
    # tinynet normalises over the last axis, which Keras may name by its index.
    try:
        rank = len(klayer.input.shape)
    except (AttributeError, ValueError):
        rank = None
    axis = c["axis"]
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if axis != -1 and (rank is None or axis != rank - 1):
        raise _refuse(klayer, f"normalises axis {c['axis']!r}; tinynet the last one")
    return BatchNorm(momentum=c["momentum"], epsilon=c["epsilon"])


def _from_rescaling(klayer: Any, c: dict[str, Any]) -> Layer:
    scale, offset = c["scale"], c["offset"]
    if not all(isinstance(v, int | float) for v in (scale, offset)):
        raise _refuse(klayer, "has a per-channel scale or offset; tinynet one number")
    return Rescaling(scale, offset)


def _from_relu(klayer: Any, c: dict[str, Any]) -> Layer:
    if c.get("max_value") is not None or c.get("threshold", 0.0) != 0.0:
        raise _refuse(klayer, "has a max_value or threshold, which tinynet lacks")
    slope = c.get("negative_slope", 0.0)
    return LeakyReLU(alpha=slope) if slope else ReLU()


def _from_activation(klayer: Any, c: dict[str, Any]) -> Layer | None:
    return activations.get(_activation(klayer, c))


def _from_flatten(klayer: Any, c: dict[str, Any]) -> Layer:
    _require(klayer, c, data_format="channels_last")
    return Flatten()


def _from_leaky_relu(klayer: Any, c: dict[str, Any]) -> Layer:
    return LeakyReLU(alpha=c["negative_slope"])


def _from_softmax(klayer: Any, c: dict[str, Any]) -> Layer:
    if c.get("axis", -1) != -1:
        raise _refuse(klayer, f"normalises axis {c['axis']!r}; tinynet the last one")
    return Softmax()


def _from_dropout(klayer: Any, c: dict[str, Any]) -> Layer:
    _require(klayer, c, noise_shape=None)
    return Dropout(c["rate"])


#: Exact Keras class -> ``convert(keras_layer, config) -> tinynet layer`` (None for
#: a layer that computes nothing, such as ``Activation("linear")``).
FROM_KERAS: dict[type, Callable[[Any, dict[str, Any]], Layer | None]] = {
    K.Dense: _from_dense,
    K.Conv2D: _from_conv2d,
    K.MaxPooling2D: _from_pool(MaxPool2D),
    K.AveragePooling2D: _from_pool(AvgPool2D),
    K.GlobalAveragePooling2D: _from_global_avg_pool,
    K.BatchNormalization: _from_batch_norm,
    K.Rescaling: _from_rescaling,
    K.Flatten: _from_flatten,
    K.Dropout: _from_dropout,
    K.ReLU: _from_relu,
    K.LeakyReLU: _from_leaky_relu,
    K.Activation: _from_activation,
    K.Softmax: _from_softmax,
}


def tinynet_layer_for(klayer: Any) -> Layer | None:
    """The tinynet layer computing what the Keras layer ``klayer`` computes.

    Raises
    ------
    ValueError
        Naming the Keras layer when tinynet has no twin for it: a Lambda layer
        (arbitrary Python, never run), another class, or an unsupported option.
    """
    if isinstance(klayer, K.Lambda):
        raise _refuse(klayer, "runs arbitrary Python code; tinynet refuses it")
    convert = FROM_KERAS.get(type(klayer))
    if convert is None:
        known = ", ".join(sorted(cls.__name__ for cls in FROM_KERAS))
        raise _refuse(klayer, f"has no tinynet equivalent; supported: {known}")
    layer = convert(klayer, klayer.get_config())
    if layer is not None:
        layer.name = klayer.name
    return layer


def tinynet_weights_of(klayer: Any) -> dict[str, np.ndarray]:
    """A Keras layer's weights under tinynet's keys (W, b, gamma, beta, moving_mean,
    moving_var). A BatchNormalization without ``scale`` or ``center`` gets the
    gamma = 1 or beta = 0 that it implies."""

    def array(variable: Any) -> np.ndarray:
        return np.asarray(variable.numpy())

    if isinstance(klayer, K.BatchNormalization):
        mean, var = array(klayer.moving_mean), array(klayer.moving_variance)
        gamma = np.ones_like(mean) if klayer.gamma is None else array(klayer.gamma)
        beta = np.zeros_like(mean) if klayer.beta is None else array(klayer.beta)
        return {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_var": var}
    weights = {}
    if getattr(klayer, "kernel", None) is not None:
        weights["W"] = array(klayer.kernel)
    if getattr(klayer, "bias", None) is not None:
        weights["b"] = array(klayer.bias)
    return weights


__all__ = [
    "FROM_KERAS",
    "keras_layers_for",
    "keras_weights_of",
    "tinynet_layer_for",
    "tinynet_weights_of",
]
