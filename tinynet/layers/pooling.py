"""Pooling layers over NHWC inputs: max, average and global average."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import pool
from .base import Layer, Shape
from .geometry import as_pair, check_padding, float_input, sliding_output_shape


class _Pool2D(Layer):
    """Shared arguments and output shape of the windowed pooling layers."""

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        who = self.describe()
        self.pool_size = as_pair(pool_size, "pool_size", who)
        # Keras: strides default to the pool size (non-overlapping windows).
        self.strides = (
            self.pool_size if strides is None else as_pair(strides, "strides", who)
        )
        self.padding = check_padding(padding, who)

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return sliding_output_shape(
            self.describe(), input_shape, self.pool_size, self.strides,
            self.padding, "pool_size",
        )  # fmt: skip

    def _dout(self, dout: np.ndarray, n: int) -> np.ndarray:
        self._check_dout(dout, n)
        return np.ascontiguousarray(dout, dtype=np.result_type(dout.dtype, np.float32))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPoolCache(NamedTuple):
    x_shape: tuple[int, ...]
    argmax: np.ndarray  # (N, ho, wo, C): offset i * pw + j of each window's maximum


class MaxPool2D(_Pool2D):
    """Maximum over each ``pool_size`` window (padding never wins).

    Forward:  y[n, oy, ox, c] = max over the window of x[n, ., ., c]
    Backward: dx gets dout[n, oy, ox, c] at the (first, row-major) position of that
              maximum and 0 elsewhere; overlapping windows add up.

    Parameters
    ----------
    pool_size : int or (height, width) pair.
    strides : int, pair, or None for ``pool_size``.
    padding : ``"valid"`` or ``"same"`` (Keras' rule).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, H, W, C) -> y : (N, ho, wo, C)."""
        self.check_input(x)
        x = float_input(x, self.dtype)
        y, argmax = pool.max_pool2d(x, self.pool_size, self.strides, self.padding)
        self._store(training, MaxPoolCache(x.shape, argmax))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ho, wo, C) -> dx : (N, H, W, C)."""
        cache: MaxPoolCache = self._take_cache()
        return pool.max_pool2d_backward(
            self._dout(dout, cache.x_shape[0]), cache.argmax, cache.x_shape,
            self.pool_size, self.strides, self.padding,
        )  # fmt: skip


class AvgPool2D(_Pool2D):
    """Mean over each ``pool_size`` window; with ``"same"`` padding the padded
    entries are not counted (as in Keras).

    Forward:  y[n, oy, ox, c] = (1 / m) * sum over the window's m real entries
    Backward: dx[n, iy, ix, c] = sum over the windows containing (iy, ix) of
              dout[n, oy, ox, c] / m

    Parameters as for :class:`MaxPool2D`.
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, H, W, C) -> y : (N, ho, wo, C)."""
        self.check_input(x)
        x = float_input(x, self.dtype)
        self._store(training, x.shape)
        return pool.avg_pool2d(x, self.pool_size, self.strides, self.padding)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ho, wo, C) -> dx : (N, H, W, C)."""
        x_shape: tuple[int, ...] = self._take_cache()
        return pool.avg_pool2d_backward(
            self._dout(dout, x_shape[0]), x_shape, self.pool_size, self.strides,
            self.padding,
        )  # fmt: skip


class GlobalAvgPool2D(Layer):
    """Mean over the spatial axes: (N, H, W, C) -> (N, C).

    Forward:  y[n, c] = (1 / (H W)) * sum_{h, w} x[n, h, w, c]
    Backward: dx[n, h, w, c] = dout[n, c] / (H W)
    """

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.describe()}: expected inputs of shape (batch, height, width, "
                f"channels), i.e. an input_shape (height, width, channels); got "
                f"{input_shape}"
            )
        return (input_shape[2],)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, H, W, C) -> y : (N, C)."""
        self.check_input(x)
        x = float_input(x, self.dtype)
        self._store(training, x.shape)
        y: np.ndarray = x.mean(axis=(1, 2), dtype=x.dtype)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, C) -> dx : (N, H, W, C)."""
        n, h, w, c = self._take_cache()
        self._check_dout(dout, n)
        dout = np.asarray(dout, dtype=np.result_type(dout.dtype, np.float32))
        share = dout / dout.dtype.type(h * w)
        return np.broadcast_to(share[:, None, None, :], (n, h, w, c)).copy()


__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]
