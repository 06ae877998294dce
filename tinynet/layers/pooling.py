"""Pooling layers over NHWC inputs: max, average and global average."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import pool
from .base import Layer, Shape
from .conv import as_pair, check_padding, float_input, sliding_geometry


class _Pool2D(Layer):
    """Shared geometry and validation of the windowed pooling layers."""

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
        self._geometry: tuple[int, int, int, int] = (0, 0, 0, 0)

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        c, self._geometry = sliding_geometry(
            self.describe(), input_shape, self.pool_size, self.strides,
            self.padding, "pool_size",
        )  # fmt: skip
        return (*self._geometry[2:], c)

    def _args(self) -> tuple[int, ...]:
        """``(ph, pw, sh, sw, pt, pl)`` as the kernels take them."""
        return (*self.pool_size, *self.strides, *self._geometry[:2])

    def _dout(self, dout: np.ndarray, n: int, dtype: np.dtype) -> np.ndarray:
        self._check_dout(dout, (n, *self.output_shape))
        return np.ascontiguousarray(dout, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


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
        self._check_input(x)
        x = float_input(x, self.dtype)
        ho, wo, c = self.output_shape
        y = np.empty((x.shape[0], ho, wo, c), dtype=x.dtype)
        # A window offset i*pw + j fits a byte for windows of up to 256 entries.
        window = self.pool_size[0] * self.pool_size[1]
        argmax = np.empty(y.shape, dtype=np.uint8 if window <= 256 else np.int32)
        pool.maxpool_forward(x, *self._args(), y, argmax)
        self._store(training, (x.shape, argmax))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ho, wo, C) -> dx : (N, H, W, C)."""
        x_shape, argmax = self._take_cache()
        dout = self._dout(dout, x_shape[0], np.result_type(dout.dtype, np.float32))
        dx = np.empty(x_shape, dtype=dout.dtype)
        return pool.maxpool_backward(dout, argmax, *self._args(), dx)


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
        self._check_input(x)
        x = float_input(x, self.dtype)
        ho, wo, c = self.output_shape
        y = np.empty((x.shape[0], ho, wo, c), dtype=x.dtype)
        pool.avgpool_forward(x, *self._args(), y)
        self._store(training, x.shape)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ho, wo, C) -> dx : (N, H, W, C)."""
        x_shape = self._take_cache()
        dout = self._dout(dout, x_shape[0], np.result_type(dout.dtype, np.float32))
        dx = np.empty(x_shape, dtype=dout.dtype)
        return pool.avgpool_backward(dout, *self._args(), dx)


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
        self._check_input(x)
        x = float_input(x, self.dtype)
        self._store(training, x.shape)
        return x.mean(axis=(1, 2), dtype=x.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, C) -> dx : (N, H, W, C)."""
        n, h, w, c = self._take_cache()
        self._check_dout(dout, (n, c))
        dout = np.asarray(dout, dtype=np.result_type(dout.dtype, np.float32))
        share = dout / dout.dtype.type(h * w)
        return np.broadcast_to(share[:, None, None, :], (n, h, w, c)).copy()


__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]
