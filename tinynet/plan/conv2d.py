"""A Conv2D (linear or with its ReLU) on its own, with the ReLU in the convolution's
epilogue and the im2col matrix kept between training steps.

The layer runs its ReLU as a layer of its own: the bias-add, the ReLU's ``x > 0``
mask and ``np.maximum`` are three passes over the output and two fresh arrays;
here ``kernels.conv.bias_relu`` applies ``max(y + b, 0)`` in the pass that adds the
bias, and backward masks the gradient with ``y > 0`` in one pass
(``kernels.conv.relu_mask``): on the MNIST convnet, 1 thread, a training step took
35.7 ms with the separate ReLU and 31.9 ms with it in the epilogue. The im2col
matrix goes to a :class:`~tinynet.plan.step.Workspace`, so the shipped CNN's
Conv -> BatchNorm -> ReLU blocks do not fault in 85 MB of fresh memory a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..kernels import conv, window_placement
from ..layers.activations import ReLU
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.geometry import float_input
from .step import Step, Workspace, write_conv_grads


class Conv2DCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C) the input
    cols: np.ndarray  # (N*ho*wo, kh*kw*C) its receptive fields (the workspace)
    w: np.ndarray  # (kh, kw, C, F) in the input's dtype
    y: np.ndarray | None  # (N, ho, wo, F) the output, when the ReLU ran: its mask


class Conv2DStep(Step):
    """``Conv2D`` with no activation or a ReLU: x : (N, H, W, C) -> (N, ho, wo, F),
    the numbers of ``conv.forward(x)``; the gradients land in the conv's ``grads``."""

    splits_batch = True

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        return (
            len(layers) >= 1
            and type(layers[0]) is Conv2D
            and (layers[0].activation is None or type(layers[0].activation) is ReLU)
        )

    def __init__(self, conv_layer: Conv2D) -> None:
        super().__init__(conv_layer)
        self.conv = conv_layer
        self._cache: Conv2DCache | None = None
        self._workspace = Workspace()

    def _placement(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(ho, wo, pad_top, pad_left)`` of the convolution."""
        layer = self.conv
        return window_placement(
            x_shape[1], x_shape[2], layer.kernel_size, layer.strides, layer.padding
        )

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        layer = self.conv
        layer.check_input(x)
        x = float_input(x, layer.dtype)
        w = layer.params["W"].astype(x.dtype, copy=False)
        b = layer.params["b"].astype(x.dtype, copy=False) if layer.use_bias else None
        ho, wo, pt, pl = self._placement(x.shape)
        relu = layer.activation is not None
        cols = None
        if training:
            cols = self._workspace.get(
                (x.shape[0] * ho * wo, w.size // layer.filters), x.dtype
            )
        y, cols = conv.conv2d_forward(
            x, w, b, *layer.strides, pt, pl, ho, wo, cols, relu
        )
        if cols is not None:  # training
            self._cache = Conv2DCache(x, cols, w, y if relu else None)
        else:
            self.clear()
        return y

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        x, cols, w, y = self._training_cache(self._cache)
        expected = (x.shape[0], *self.conv.built_shapes()[1])
        if dout.shape != expected:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape {expected}, "
                f"got {dout.shape}"
            )
        dout = np.ascontiguousarray(dout, dtype=x.dtype)
        _, _, pt, pl = self._placement(x.shape)
        dx, dw, db = conv.conv2d_backward(
            dout, x, cols, w, *self.conv.strides, pt, pl, need_dx, y
        )
        write_conv_grads(self.conv, dw, db)
        return dx

    def clear(self) -> None:
        self._cache = None
        self._workspace.clear()
        super().clear()

    def describe(self) -> str:
        relu = ", ReLU in the epilogue" if self.conv.activation is not None else ""
        return f"Conv2DStep: {self.conv.name} (im2col kept{relu})"


__all__ = ["Conv2DCache", "Conv2DStep"]
