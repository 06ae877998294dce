"""A model's execution plan: its layers in order, with neighbours fused where it pays.

Users build and inspect a model layer by layer (``summary``, ``save``, the weights
are the layers'); ``Sequential`` runs it step by step. A step is a layer, or a
pair of layers run as one:

- :class:`ConvPool`: a ``Conv2D`` (linear or with its ReLU) followed by
  ``MaxPool2D(2)``, run as one convolution with the pool in its epilogue
  (``tinynet.kernels.convpool``);
- :class:`DenseDropout`: a ``Dense`` with its ReLU followed by ``Dropout``, the
  bias, ReLU and mask applied in one pass over the matmul's output
  (``tinynet.kernels.dropout``).

A fused step computes the same numbers as the two layers, and its gradients are
the same; ``tests/test_fusion.py`` checks both (bit for bit for DenseDropout).

Why ConvPool: the classic MNIST convnet is two such pairs. Fused, a training step
stops writing and re-reading the full-resolution activations and their gradients
(11 MB and 4 MB per batch of 128); the first pair's weight gradient comes straight
from the pooled gradient; and the second pair (3x3 over 32 channels) runs by
Winograd F(2x2, 3x3) over just the 2x2 tiles the pool keeps (``kernels.winograd``).
Measured on a 2-core Intel KVM machine, classic convnet, batch 128, fused and
unfused plans alternated in one process, median of 80 steps (unfused -> fused):

- training step, 1 thread: 38.2 -> 19.5 ms of CPU time;
- training step, 2 threads: 24.0 -> 12.4 ms;
- ``predict``, 2 threads: 18.5k -> 30.1k images/s.

Before the Winograd path the same comparison gave 44.4 -> 36.0 ms, 29.2 -> 19.5 ms
and 16.3k -> 20.7k images/s.

Why DenseDropout: in the MNIST MLP, the NumPy passes after each two-thread matmul
(bias, ReLU, mask, product; and their gradients) read an output half of which sits
in the other core's cache. Same machine, ``zoo.mnist_mlp`` on MNIST batches of
128, 2 threads, plans alternated, median of 440 steps: 3.59 -> 3.31 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .layers.base import Layer
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.dropout import Dropout


class FusedPair:
    """Two neighbouring layers run as one step. ``forward``/``backward`` have the
    layer signatures; the parameters and gradients are the first layer's (the
    second has none)."""

    def __init__(self, first: Layer, second: Layer) -> None:
        self.layers = (first, second)

    # What a gradient check (tinynet.gradcheck.check_layer) reads of a layer.
    @property
    def needs_input_grad(self) -> bool:
        return self.layers[0].needs_input_grad

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].dtype

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        return self.layers[1].output_shape

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.layers[0].params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.layers[0].grads

    def describe(self) -> str:
        first, second = self.layers
        return f"{first.describe()} + {second.describe()} (fused)"

    def __repr__(self) -> str:
        first, second = self.layers
        return f"{type(self).__name__}({first.name!r} + {second.name!r})"


class ConvPool(FusedPair):
    """``Conv2D`` then ``MaxPool2D(2)``, run as one step (see the module docstring).

    The gradients land in the convolution's ``grads``. The pool layer's own cache is
    cleared, so calling its ``backward`` directly after a fused forward fails loudly
    instead of using stale data.
    """

    @staticmethod
    def matches(first: Layer, second: Layer) -> bool:
        return isinstance(first, Conv2D) and first.can_fuse_pool(second)

    def __init__(self, conv: Conv2D, pool: Layer) -> None:
        super().__init__(conv, pool)
        self.conv, self.pool = conv, pool

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.pool._cache = None
        return self.conv.forward_pooled(x, training=training)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.conv.backward_pooled(dout)


class DenseDropout(FusedPair):
    """``Dense(activation="relu")`` then ``Dropout(rate > 0)``, run as one step: the
    bias, ReLU and mask in one pass (``Dense.forward_dropout``). Same numbers and the
    same mask as the two layers; the gradients land in the Dense layer's ``grads``.
    ``rng`` is the Dropout's generator (a gradient check re-seeds it).
    """

    @staticmethod
    def matches(first: Layer, second: Layer) -> bool:
        return isinstance(first, Dense) and first.can_fuse_dropout(second)

    def __init__(self, dense: Dense, dropout: Dropout) -> None:
        super().__init__(dense, dropout)
        self.dense, self.dropout = dense, dropout

    @property
    def rng(self) -> np.random.Generator | None:
        return self.dropout.rng

    @rng.setter
    def rng(self, rng: np.random.Generator | None) -> None:
        self.dropout.rng = rng

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.dense.forward_dropout(x, self.dropout, training=training)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        return self.dense.backward_dropout(dout)


def plan(layers: Sequence[Layer]) -> list[tuple[int, Any]]:
    """The steps that run ``layers``: ``(index of the step's first layer, step)``.

    A step is the layer itself, or a fused pair (:class:`ConvPool`,
    :class:`DenseDropout`) covering two layers.
    """
    steps: list[tuple[int, Any]] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        after = layers[i + 1] if i + 1 < len(layers) else None
        pair = _pair_for(layer, after)
        if pair is None:
            steps.append((i, layer))
            i += 1
        else:
            steps.append((i, pair(layer, after)))
            i += 2
    return steps


#: The pairs :func:`plan` fuses, tried in this order.
_PAIRS = (ConvPool, DenseDropout)


def _pair_for(first: Layer, second: Layer | None) -> type[FusedPair] | None:
    """The fused pair that runs ``first`` then ``second``, or None."""
    if second is None:
        return None
    return next((kind for kind in _PAIRS if kind.matches(first, second)), None)


__all__ = ["ConvPool", "DenseDropout", "FusedPair", "plan"]
