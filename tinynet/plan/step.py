"""What every step of a plan is, and the plainest one: a single layer.

A step maps a batch forward and a gradient backward, like a layer, over one or more
neighbouring layers of the model. It reads the layers' ``params`` and writes their
``grads``; it owns nothing a model saves.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from ..layers.base import Layer, Shape
from ..layers.conv import Conv2D

CacheT = TypeVar("CacheT")


class Step:
    """Base class of the steps: the layers covered and what reads them.

    Subclasses set ``span`` (how many layers they cover), implement ``matches``,
    ``forward``, ``backward`` and ``clear``, and may set ``splits_batch`` when their
    kernels split the batch over threads (``tinynet.kernels.batch_split``): a plan
    with such a step runs the BLAS single-threaded throughout.
    """

    span: int = 1
    splits_batch: bool = False

    def __init__(self, *layers: Layer) -> None:
        self.layers = layers

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        """Whether this step can run the first ``span`` of ``layers``."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def clear(self) -> None:
        """Drop every activation kept for backward, and any scratch memory."""
        for layer in self.layers:
            layer.clear_cache()

    # What a gradient check (tinynet.gradcheck.check_layer) reads of a layer.
    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].dtype

    @property
    def input_shape(self) -> Shape | None:
        return self.layers[0].input_shape

    @property
    def output_shape(self) -> Shape | None:
        return self.layers[-1].output_shape

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {k: v for layer in self.layers for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {k: v for layer in self.layers for k, v in layer.grads.items()}

    @property
    def rng(self) -> np.random.Generator | None:
        return self.layers[-1].rng

    @rng.setter
    def rng(self, rng: np.random.Generator | None) -> None:
        for layer in self.layers:
            layer.rng = rng

    @property
    def kind(self) -> str:
        """What runs: the composite step's class name, or the single layer's."""
        return type(self).__name__

    def describe(self) -> str:
        """``"ConvPool: conv2d + max_pool2d"``: the step and the layers it runs."""
        names = " + ".join(layer.name or type(layer).__name__ for layer in self.layers)
        return f"{type(self).__name__}: {names}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def _training_cache(self, cache: CacheT | None) -> CacheT:
        """``cache``, or a RuntimeError when backward comes without a training
        forward (which is what fills it)."""
        if cache is None:
            raise RuntimeError(
                f"{self.describe()}: backward() called without a preceding "
                "forward(x, training=True)"
            )
        return cache


class Workspace:
    """One array a step writes on every training forward and reads in backward,
    kept between steps of one batch size and dtype.

    Writing into memory the process already holds beats a fresh allocation: the
    im2col matrix of the MNIST conv layers takes 0.5 ms against 0.9 ms (first-touch
    page faults); the second conv of the shipped CNN writes 85 MB per batch of 128.
    The previous step's contents are dead by then: its cache has been replaced.
    """

    def __init__(self) -> None:
        self._array: np.ndarray | None = None

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The array, of ``shape`` and ``dtype`` (allocated when they change)."""
        if (
            self._array is None
            or self._array.shape != shape
            or self._array.dtype != dtype
        ):
            self._array = np.empty(shape, dtype=dtype)
        return self._array

    def clear(self) -> None:
        self._array = None


class ThreadScratch:
    """A scratch array per thread, for work a batch split runs chunk by chunk
    (``tinynet.kernels.batch_split``): each thread writes its chunk's
    intermediate into the same memory, which stays in its core's cache, instead
    of into its part of a whole-batch array that goes out to memory and back.
    Kept between steps, as :class:`Workspace` is (fresh memory per chunk takes
    first-touch page faults)."""

    def __init__(self) -> None:
        self._arrays: dict[int, np.ndarray] = {}

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The calling thread's array, of ``shape`` and ``dtype`` (contents
        undefined)."""
        size = math.prod(shape)
        thread = threading.get_ident()
        array = self._arrays.get(thread)
        if array is None or array.size < size or array.dtype != dtype:
            array = self._arrays[thread] = np.empty(size, dtype=dtype)
        return array[:size].reshape(shape)

    def clear(self) -> None:
        self._arrays.clear()


class LayerStep(Step):
    """One layer run as its specification: its own ``forward`` and ``backward``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.layer = layer
        # The convolution kernels split the batch over threads themselves.
        self.splits_batch = isinstance(layer, Conv2D)

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        return len(layers) >= 1

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.layer.forward(x, training=training)

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        if need_dx:
            return self.layer.backward(dout)
        # Only layers with parameters take need_dx (the layer contract); a plan asks
        # it of the first of them alone.
        backward: Any = self.layer.backward
        dx: np.ndarray | None = backward(dout, need_dx=False)
        return dx

    @property
    def kind(self) -> str:
        return type(self.layer).__name__

    def describe(self) -> str:
        return f"{self.layer.name} ({self.kind})"


def write_conv_grads(conv: Conv2D, dw: np.ndarray, db: np.ndarray) -> None:
    """Copy a composite step's convolution gradients into ``conv.grads``."""
    conv.grads["W"][...] = dw
    if conv.use_bias:
        conv.grads["b"][...] = db


__all__ = ["LayerStep", "Step", "ThreadScratch", "Workspace", "write_conv_grads"]
