"""One converter per tinynet layer: the ONNX nodes that compute what the layer
computes at inference.

tinynet is channels-last (NHWC); ONNX's Conv, pools and BatchNormalization are
channels-first (NCHW). Rather than transposing around every such node, a converter
receives a :class:`Flow` that knows where the channel axis of the current tensor is,
asks for the layout it needs (:meth:`GraphBuilder.channels_first` /
:meth:`GraphBuilder.channels_last`), and the builder inserts a Transpose only when
the layout actually changes: a convnet gets one after its input and one before its
Flatten, so Flatten keeps tinynet's (h, w, c) order and the Dense weights need no
permuting.

Every converter computes in float32 (the type every ONNX runtime implements for
every op here) and uses opset 13 semantics or older, so any opset >= 13 works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from ..kernels import window_geometry
from ..layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.dropout import Dropout
from ..layers.normalization import BatchNorm, Rescaling
from ..layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from ..layers.reshape import Flatten


@dataclass(frozen=True)
class Flow:
    """A tensor of the graph being built.

    name : the ONNX value name.
    rank : number of axes, batch included.
    channels_first : True when the channel axis (tinynet's last) has been moved to
        axis 1 (NCHW for images); always False for rank 2.
    """

    name: str
    rank: int
    channels_first: bool = False

    @property
    def channel_axis(self) -> int:
        return 1 if self.channels_first else self.rank - 1


class GraphBuilder:
    """Collects the nodes and weights (initializers) of one graph, with unique names."""

    def __init__(self) -> None:
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._taken: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, k = name, 0
        while candidate in self._taken:
            k += 1
            candidate = f"{name}_{k}"
        self._taken.add(candidate)
        return candidate

    def weight(self, name: str, array: Any) -> str:
        """Add ``array`` (cast to float32) as an initializer; return its name."""
        name = self.unique(name)
        value = np.ascontiguousarray(array, dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        """Add one ``op`` node with a single output; return the output's name."""
        name = self.unique(name)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def channels_first(self, x: Flow, name: str) -> Flow:
        """``x`` with its channel axis at 1: (N, H, W, C) -> (N, C, H, W)."""
        if x.channels_first or x.rank <= 2:
            return x
        perm = [0, x.rank - 1, *range(1, x.rank - 1)]
        out = self.node("Transpose", [x.name], f"{name}_to_nchw", perm=perm)
        return Flow(out, x.rank, channels_first=True)

    def channels_last(self, x: Flow, name: str) -> Flow:
        """``x`` in tinynet's own layout: (N, C, H, W) -> (N, H, W, C)."""
        if not x.channels_first:
            return x
        perm = [0, *range(2, x.rank), 1]
        out = self.node("Transpose", [x.name], f"{name}_to_nhwc", perm=perm)
        return Flow(out, x.rank, channels_first=False)


#: ``convert(builder, layer, x, name) -> y``: add the layer's nodes, named after
#: ``name``, that map the tensor ``x`` to the returned one.
Converter = Callable[[GraphBuilder, Any, Flow, str], Flow]


# ------------------------------------------------------------------ activations
def _elementwise(op: str) -> Converter:
    """A parameter-free element-wise op, which works in either layout."""

    def convert(g: GraphBuilder, layer: Layer, x: Flow, name: str) -> Flow:
        return Flow(g.node(op, [x.name], name), x.rank, x.channels_first)

    return convert


def _leaky_relu(g: GraphBuilder, layer: LeakyReLU, x: Flow, name: str) -> Flow:
    out = g.node("LeakyRelu", [x.name], name, alpha=layer.alpha)
    return Flow(out, x.rank, x.channels_first)


def _softmax(g: GraphBuilder, layer: Softmax, x: Flow, name: str) -> Flow:
    # tinynet normalises over the channel axis, wherever the layout has put it.
    out = g.node("Softmax", [x.name], name, axis=x.channel_axis)
    return Flow(out, x.rank, x.channels_first)


def _owned_activation(
    g: GraphBuilder, owner: Dense | Conv2D, x: Flow, name: str
) -> Flow:
    """Apply the activation a Dense or Conv2D owns, if any."""
    activation = owner.activation
    if activation is None:
        return x
    convert = CONVERTERS.get(type(activation))
    if convert is None:
        raise ValueError(
            f"to_onnx: the {type(activation).__name__} activation of {name!r} has "
            "no ONNX export"
        )
    return convert(g, activation, x, f"{name}_{type(activation).__name__.lower()}")


# ----------------------------------------------------------- layers with weights
def _dense(g: GraphBuilder, layer: Dense, x: Flow, name: str) -> Flow:
    """Gemm: y = x W + b with W (in, units) as tinynet stores it."""
    inputs = [x.name, g.weight(f"{name}.W", layer.params["W"])]
    if layer.use_bias:
        inputs.append(g.weight(f"{name}.b", layer.params["b"]))
    z = Flow(g.node("Gemm", inputs, name), 2)
    return _owned_activation(g, layer, z, name)


def _pads(layer: Conv2D | MaxPool2D | AvgPool2D, window: tuple[int, int]) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right]: Keras' "same" rule (the larger half
    after) or none for "valid"; the amount after is what the last window reaches
    beyond the input."""
    before, after = [], []
    height_width = layer.built_shapes()[0][:2]
    for size, k, s in zip(height_width, window, layer.strides, strict=True):
        out, pad_before = window_geometry(size, k, s, layer.padding)
        before.append(pad_before)
        after.append(max((out - 1) * s + k - size - pad_before, 0))
    return before + after


def _conv2d(g: GraphBuilder, layer: Conv2D, x: Flow, name: str) -> Flow:
    """Conv over NCHW; W (kh, kw, cin, cout) becomes ONNX's (cout, cin, kh, kw)."""
    x = g.channels_first(x, name)
    w = np.transpose(layer.params["W"], (3, 2, 0, 1))
    inputs = [x.name, g.weight(f"{name}.W", w)]
    if layer.use_bias:
        inputs.append(g.weight(f"{name}.b", layer.params["b"]))
    out = g.node(
        "Conv",
        inputs,
        name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        pads=_pads(layer, layer.kernel_size),
    )
    return _owned_activation(g, layer, Flow(out, 4, channels_first=True), name)


def _batch_norm(g: GraphBuilder, layer: BatchNorm, x: Flow, name: str) -> Flow:
    """BatchNormalization in inference form: the moving mean and variance."""
    x = g.channels_first(x, name)
    inputs = [
        x.name,
        g.weight(f"{name}.gamma", layer.params["gamma"]),
        g.weight(f"{name}.beta", layer.params["beta"]),
        g.weight(f"{name}.moving_mean", layer.buffers["moving_mean"]),
        g.weight(f"{name}.moving_var", layer.buffers["moving_var"]),
    ]
    out = g.node("BatchNormalization", inputs, name, epsilon=layer.epsilon)
    return Flow(out, x.rank, x.channels_first)


# ------------------------------------------------------------ parameter-free
def _pool(op: str, **extra: Any) -> Converter:
    def convert(
        g: GraphBuilder, layer: MaxPool2D | AvgPool2D, x: Flow, name: str
    ) -> Flow:
        x = g.channels_first(x, name)
        out = g.node(
            op,
            [x.name],
            name,
            kernel_shape=list(layer.pool_size),
            strides=list(layer.strides),
            pads=_pads(layer, layer.pool_size),
            **extra,
        )
        return Flow(out, 4, channels_first=True)

    return convert


def _global_avg_pool(
    g: GraphBuilder, layer: GlobalAvgPool2D, x: Flow, name: str
) -> Flow:
    """GlobalAveragePool gives (N, C, 1, 1); Flatten makes it tinynet's (N, C)."""
    x = g.channels_first(x, name)
    pooled = g.node("GlobalAveragePool", [x.name], f"{name}_nc11")
    return Flow(g.node("Flatten", [pooled], name, axis=1), 2)


def _flatten(g: GraphBuilder, layer: Flatten, x: Flow, name: str) -> Flow:
    """Flatten in tinynet's (h, w, c) order, so move the channels back last first."""
    x = g.channels_last(x, name)
    return Flow(g.node("Flatten", [x.name], name, axis=1), 2)


def _dropout(g: GraphBuilder, layer: Dropout, x: Flow, name: str) -> Flow:
    """The identity at inference: no node at all."""
    return x


def _rescaling(g: GraphBuilder, layer: Rescaling, x: Flow, name: str) -> Flow:
    """y = x * scale + offset, with float32 scalars as tinynet computes it."""
    scale = g.weight(f"{name}.scale", np.float32(layer.scale))
    offset = g.weight(f"{name}.offset", np.float32(layer.offset))
    scaled = g.node("Mul", [x.name, scale], f"{name}_scaled")
    return Flow(g.node("Add", [scaled, offset], name), x.rank, x.channels_first)


#: Exact layer class -> converter. A class missing here cannot be exported.
CONVERTERS: dict[type[Layer], Converter] = {
    Dense: _dense,
    Conv2D: _conv2d,
    BatchNorm: _batch_norm,
    MaxPool2D: _pool("MaxPool"),
    # Keras' (and tinynet's) "same" average ignores the padded entries.
    AvgPool2D: _pool("AveragePool", count_include_pad=0),
    GlobalAvgPool2D: _global_avg_pool,
    Flatten: _flatten,
    Dropout: _dropout,
    Rescaling: _rescaling,
    ReLU: _elementwise("Relu"),
    LeakyReLU: _leaky_relu,
    Sigmoid: _elementwise("Sigmoid"),
    Tanh: _elementwise("Tanh"),
    Softmax: _softmax,
}

__all__ = ["CONVERTERS", "Flow", "GraphBuilder"]
