"""Conv2D (linear or with its ReLU) then MaxPool2D(2), run as one convolution with
the pool in its epilogue.

Why: the classic MNIST convnet is two such pairs. Fused, a training step stops
writing and re-reading the full-resolution activations and their gradients (11 MB
and 4 MB per batch of 128); the first pair's weight gradient comes straight from
the pooled gradient (``kernels.convpool.pooled_weight_grad``); and a 3x3 stride-1
convolution over ``winograd_conv.MIN_CHANNELS`` or more channels (the second pair) runs
by Winograd F(2x2, 3x3) over just the 2x2 tiles the pool keeps
(``kernels.winograd_conv``). Measured on a 2-core Intel KVM machine, classic convnet,
batch 128, fused and unfused plans alternated in one process, median of 80 steps
(unfused -> fused): training step, 2 threads, 24.0 -> 12.4 ms; ``predict``, 2
threads, 18.5k -> 30.1k images/s. ``kernels.convpool`` says why the pool in the
epilogue is exact; ``tests/test_plan.py`` checks the step against the two layers.
A layer over one input channel with few filters (the speedrun net's first) runs
directly, without im2col (``kernels.direct_conv_pool``, :func:`pools_directly`):
its training step, 1 thread, 15.4 -> 13.7 ms.

The im2col (or Winograd input) buffer is kept between training steps
(:class:`~tinynet.plan.step.Workspace` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..kernels import conv, direct_conv_pool, window_placement, winograd_conv
from ..layers.activations import ReLU
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.geometry import float_input
from ..layers.pooling import MaxPool2D
from .step import Step, Workspace, write_conv_grads


def pools_by_winograd(conv_layer: Conv2D) -> bool:
    """Whether ``conv_layer`` followed by a 2x2 max-pool runs by Winograd F(2x2,
    3x3): a 3x3 stride-1 kernel over ``winograd_conv.MIN_CHANNELS`` or more channels."""
    return (
        conv_layer.kernel_size == (3, 3)
        and conv_layer.strides == (1, 1)
        and conv_layer.input_shape is not None
        and conv_layer.input_shape[2] >= winograd_conv.MIN_CHANNELS
    )


def pools_directly(conv_layer: Conv2D) -> bool:
    """Whether ``conv_layer`` followed by a 2x2 max-pool runs by
    :mod:`tinynet.kernels.direct_conv_pool`: one input channel, fewer than
    ``direct_conv_pool.MAX_FILTERS`` filters, stride 1, valid padding."""
    return (
        conv_layer.input_shape is not None
        and conv_layer.input_shape[2] == 1
        and conv_layer.filters < direct_conv_pool.MAX_FILTERS
        and conv_layer.strides == (1, 1)
        and conv_layer.padding == "valid"
    )


class ConvPoolCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C) the input
    # im2col rows (N*ho*wo, K), Winograd planes (16, tiles, C), or (0,) when direct
    kept: np.ndarray
    w: np.ndarray  # (kh, kw, C, F) in the input's dtype
    pooled: np.ndarray  # (N, ho // 2, wo // 2, F) the output
    argmax: np.ndarray  # (N, ho // 2, wo // 2, F) uint8: each window's winner


class ConvPool(Step):
    """``Conv2D`` (no activation or ReLU) followed by ``MaxPool2D(2)`` (stride 2,
    valid): x : (N, H, W, C) -> (N, ho // 2, wo // 2, F), the numbers of
    ``pool.forward(conv.forward(x))``; the gradients land in the conv's ``grads``."""

    span = 2
    splits_batch = True

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        if len(layers) < 2:
            return False
        conv_layer, pool = layers[0], layers[1]
        return (
            type(conv_layer) is Conv2D
            and (conv_layer.activation is None or type(conv_layer.activation) is ReLU)
            and type(pool) is MaxPool2D
            and pool.pool_size == (2, 2)
            and pool.strides == (2, 2)
            and pool.padding == "valid"
        )

    def __init__(self, conv_layer: Conv2D, pool: MaxPool2D) -> None:
        super().__init__(conv_layer, pool)
        self.conv, self.pool = conv_layer, pool
        self._cache: ConvPoolCache | None = None
        self._workspace = Workspace()

    @property
    def winograd(self) -> bool:
        """Whether the convolution runs by Winograd F(2x2, 3x3) (module docstring)."""
        return pools_by_winograd(self.conv)

    def _placement(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(ho, wo, pad_top, pad_left)`` of the convolution."""
        conv_layer = self.conv
        return window_placement(
            x_shape[1], x_shape[2], conv_layer.kernel_size, conv_layer.strides,
            conv_layer.padding,
        )  # fmt: skip

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.conv.check_input(x)
        x = float_input(x, self.conv.dtype)
        w = self.conv.params["W"].astype(x.dtype, copy=False)
        b = (
            self.conv.params["b"].astype(x.dtype, copy=False)
            if self.conv.use_bias
            else None
        )
        ho, wo, pt, pl = self._placement(x.shape)
        n, c, f = x.shape[0], x.shape[3], self.conv.filters
        p = np.empty((n, ho // 2, wo // 2, f), dtype=x.dtype)
        argmax = np.empty(p.shape, dtype=np.uint8)
        relu = self.conv.activation is not None
        if pools_directly(self.conv):
            direct_conv_pool.forward(x, w, b, relu, p, argmax)
            kept = np.empty(0, x.dtype) if training else None
        elif self.winograd:
            shape: tuple[int, ...] = (16, n * (ho // 2) * (wo // 2), c)
            kept = self._workspace.get(shape, x.dtype) if training else None
            winograd_conv.conv3x3_pool_forward(x, w, b, pt, pl, relu, kept, p, argmax)
        else:
            shape = (n * ho * wo, w.size // f)
            kept = self._workspace.get(shape, x.dtype) if training else None
            conv.conv2d_forward(
                x, w, b, *self.conv.strides, pt, pl, ho, wo, kept, relu, (p, argmax)
            )
        if kept is not None:  # training
            self._cache = ConvPoolCache(x, kept, w, p, argmax)
        else:
            self.clear()
        return p

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        x, kept, w, p, argmax = self._training_cache(self._cache)
        if dout.shape != p.shape:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape {p.shape}, "
                f"got {dout.shape}"
            )
        dout = np.ascontiguousarray(dout, dtype=x.dtype)
        ho, wo, pt, pl = self._placement(x.shape)
        relu = self.conv.activation is not None
        if pools_directly(self.conv):
            dx, dw, db = direct_conv_pool.backward(dout, p, argmax, relu, x, w, need_dx)
        elif self.winograd:
            dx, dw, db = winograd_conv.conv3x3_pool_backward(
                dout, p, argmax, relu, kept, w, pt, pl, x.shape, need_dx
            )
        else:
            dx, dw, db = conv.conv2d_backward(
                dout, x, kept, w, *self.conv.strides, pt, pl, need_dx,
                pool=(p, argmax, relu, ho, wo),
            )  # fmt: skip
        write_conv_grads(self.conv, dw, db)
        return dx

    def clear(self) -> None:
        self._cache = None
        self._workspace.clear()
        super().clear()

    def describe(self) -> str:
        how = "Winograd F(2x2, 3x3)" if self.winograd else "im2col"
        how = "direct" if pools_directly(self.conv) else how
        relu = " + ReLU" if self.conv.activation is not None else ""
        return (
            f"ConvPool: {self.conv.name} + {self.pool.name} ({how}{relu}, "
            "2x2 max-pool in the epilogue)"
        )


__all__ = ["ConvPool", "ConvPoolCache", "pools_by_winograd", "pools_directly"]
