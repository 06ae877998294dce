"""The layer contract every tinynet layer follows.

The layers are the specification: each forward and backward is the plain maths. A
model runs them through its plan (``tinynet.plan``), which may run neighbours as one
faster composite step that reads their ``params`` and writes their ``grads``; no
layer knows about that.

A layer is built once for a known input shape (without the batch axis), which creates
its parameters; after that it maps a batch forward and a gradient backward::

    layer = Dense(64)
    out_shape = layer.build((784,), rng=np.random.default_rng(0), dtype=np.float32)
    y = layer.forward(x, training=True)     # x : (N, 784) -> y : (N, 64)
    dx = layer.backward(dy)                 # fills layer.grads, returns dL/dx

- ``params`` and ``grads`` are dicts with the same keys ("W", "b", "gamma", "beta"),
  and each ``grads[k]`` has the shape and dtype of ``params[k]``.
- ``buffers`` holds state that is saved but not trained (BatchNorm running statistics).
- ``forward(x, training=True)`` keeps exactly one cache for ``backward``, replaced on
  every call; ``forward(x, training=False)`` clears it, so inference holds no memory.
- ``backward(dout)`` fills every ``grads[k]`` and returns dx. Layers with
  parameters also take ``backward(dout, need_dx=False)``, which skips the input
  gradient and returns None: a model's first trained layer has no use for it, and
  for a first Dense layer it is a fifth of a training step's FLOPs.
- ``backward`` before a training forward raises ``RuntimeError``.
- ``get_config()`` returns the JSON-serialisable constructor arguments; the registry in
  ``tinynet.layers`` rebuilds a layer from ``{"class_name": ..., "config": ...}``.
- Layers that draw random numbers while training (Dropout) use ``self.rng``, which the
  model sets from its single seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

Shape = tuple[int, ...]


class Layer:
    """Base class: holds the bookkeeping, subclasses supply the maths.

    Subclasses implement ``_build(input_shape, rng) -> output_shape`` (create params
    there, in ``self.dtype``), ``forward``, ``backward`` and ``get_config``.
    """

    #: Whether ``forward`` behaves differently when ``training=True`` apart from caching
    #: (Dropout, BatchNorm). Used by ``summary`` and by gradient checks.
    has_training_mode: bool = False

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.dtype: np.dtype = np.dtype(np.float32)
        self.rng: np.random.Generator | None = None
        self._cache: Any = None

    # ----------------------------------------------------------------- building
    @property
    def built(self) -> bool:
        return self.output_shape is not None

    def build(
        self,
        input_shape: Shape,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> Shape:
        """Create the parameters for inputs of ``input_shape`` (batch axis excluded).

        Returns the output shape (batch axis excluded). Raises ``ValueError`` naming
        the layer when the input shape does not suit it.
        """
        input_shape = tuple(int(d) for d in input_shape)
        if any(d <= 0 for d in input_shape):
            raise ValueError(
                f"{self.describe()}: input shape must be positive, got {input_shape}"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self.describe()}: dtype must be float32 or float64")
        self.rng = rng if rng is not None else np.random.default_rng()
        self.input_shape = input_shape
        self.output_shape = tuple(int(d) for d in self._build(input_shape, self.rng))
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None
        return self.output_shape

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Default for parameter-free, shape-preserving layers."""
        return input_shape

    def astype(self, dtype: Any) -> Self:
        """Cast parameters, gradients and buffers to ``dtype`` in place."""
        self.dtype = np.dtype(dtype)
        for store in (self.params, self.grads, self.buffers):
            for k, v in store.items():
                store[k] = v.astype(self.dtype)
        self._cache = None
        return self

    # ------------------------------------------------------------- running
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # --------------------------------------------------------------- helpers
    def describe(self) -> str:
        """``"Dense 'dense_1'"`` or ``"Dense"``: how error messages name the layer."""
        cls = type(self).__name__
        return f"{cls} {self.name!r}" if self.name else cls

    def built_shapes(self) -> tuple[Shape, Shape]:
        """``(input_shape, output_shape)``; a RuntimeError if the layer is not built."""
        if self.input_shape is None or self.output_shape is None:
            raise RuntimeError(
                f"{self.describe()} is not built: call build(input_shape) or put it "
                "in a Sequential with an input_shape"
            )
        return self.input_shape, self.output_shape

    def check_input(self, x: np.ndarray) -> None:
        """Raise a ValueError naming this layer unless ``x`` is (N, *input_shape)."""
        input_shape, _ = self.built_shapes()
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"{self.describe()}: expected a numpy array, got {type(x).__name__}"
            )
        if x.ndim != len(input_shape) + 1 or x.shape[1:] != input_shape:
            raise ValueError(
                f"{self.describe()}: expected input of shape "
                f"(batch, {', '.join(map(str, input_shape))}), got {x.shape}"
            )

    def _store(self, training: bool, cache: Any) -> None:
        """Keep ``cache`` for backward when training; otherwise hold nothing."""
        self._cache = cache if training else None

    def clear_cache(self) -> None:
        """Drop what the last training forward kept (a finished fit holds nothing)."""
        self._cache = None

    def _take_cache(self) -> Any:
        if self._cache is None:
            raise RuntimeError(
                f"{self.describe()}: backward() called without a preceding "
                "forward(x, training=True)"
            )
        return self._cache

    def _check_dout(self, dout: np.ndarray, batch: int) -> None:
        """Raise a ValueError naming this layer unless ``dout`` is
        (batch, *output_shape)."""
        expected = (batch, *self.built_shapes()[1])
        if dout.shape != expected:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape {expected}, "
                f"got {dout.shape}"
            )

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (subclasses extend this)."""
        return {"name": self.name}

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items() if v is not None
        )
        return f"{type(self).__name__}({args})"
