"""A Dense layer on its own (any activation), its products split by the batch.

The layer's numbers, but the matrix products run in batch shares on single-threaded
BLAS (``tinynet.kernels.dense``), so they do not change with the width the plan's
governor chose; the owned activation runs as its own layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..kernels.dense import dense_backward, matmul_rows
from ..layers.base import Layer
from ..layers.dense import Dense
from .step import Step


class DenseStep(Step):
    """``Dense``: x : (N, in) -> (N, units), the numbers of ``dense.forward(x)``;
    the gradients land in the layer's ``grads``."""

    splits_batch = True

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        return len(layers) >= 1 and type(layers[0]) is Dense

    def __init__(self, dense: Dense) -> None:
        super().__init__(dense)
        self.dense = dense
        self._x: np.ndarray | None = None  # the input, kept for backward

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.dense.check_input(x)
        z = matmul_rows(x, self.dense.params["W"])
        if self.dense.use_bias:
            z += self.dense.params["b"]
        self._x = x if training else None
        activation = self.dense.activation
        return z if activation is None else activation.forward(z, training=training)

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        x = self._training_cache(self._x)
        expected = (x.shape[0], self.dense.units)
        if dout.shape != expected:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape {expected}, "
                f"got {dout.shape}"
            )
        activation = self.dense.activation
        dz = dout if activation is None else activation.backward(dout)
        grads = self.dense.grads
        if self.dense.use_bias:
            np.sum(dz, axis=0, out=grads["b"])
        return dense_backward(x, dz, self.dense.params["W"], grads["W"], need_dx)

    def clear(self) -> None:
        self._x = None
        super().clear()

    def describe(self) -> str:
        return f"DenseStep: {self.dense.name} (products split by the batch)"


__all__ = ["DenseStep"]
