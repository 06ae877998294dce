"""Shape-only layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Layer, Shape


class Flatten(Layer):
    """Collapse every axis but the batch axis (row-major, as Keras with NHWC).

    Forward:  y = x.reshape(N, H*W*C)        x : (N, H, W, C) or any (N, ...)
    Backward: dx = dout.reshape(N, H, W, C)
    """

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.check_input(x)
        self._store(training, x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x_shape = self._take_cache()
        self._check_dout(dout, x_shape[0])
        return dout.reshape(x_shape)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


__all__ = ["Flatten"]
