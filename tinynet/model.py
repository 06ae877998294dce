"""``Sequential``: a stack of layers built for one input shape, trained as one model.

The model owns the plumbing a layer should not care about: building every layer at
definition time (so a shape mistake fails there, naming the layer), naming parameters
(``"0.W"``, ``"3.gamma"``), the one seeded random Generator, and the fusion of a final
Softmax (or Sigmoid) with its cross-entropy loss. The training loop itself lives in
``training.py`` and saving in ``saving.py``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import fusion
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .kernels import batch_split
from .layers.activations import Sigmoid, Softmax
from .layers.base import Layer

# A loss that takes logits, and the output layer whose gradient it already contains:
# d/dz CE(softmax(z), y) = softmax(z) - y (and likewise for sigmoid + binary CE), so
# training skips that layer and hands the loss the logits directly.
_FUSED_OUTPUTS: dict[type, type] = {
    losses_mod.SoftmaxCrossEntropy: Softmax,
    losses_mod.BinaryCrossEntropy: Sigmoid,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # Conv2D -> conv2d


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : the layers, in order. The output layer's own activation (``Dense(10,
        activation="softmax")``) becomes a layer of its own at the end of
        ``model.layers``, so training can fuse it with the loss; hidden layers keep
        theirs (a Conv2D applies its ReLU to its own output).
    input_shape : shape of one example, without the batch axis, e.g. ``(28, 28, 1)``.
    seed : seeds the model's ``numpy.random.Generator``, which draws the initial
        weights and, unless ``fit`` is given its own seed, shuffling, dropout and
        augmentation. Same seed, same weights, bit for bit.
    dtype : ``"float32"`` (default) or ``"float64"`` (for gradient checks).
    """

    def __init__(
        self,
        layers: Iterable[Layer],
        input_shape: Sequence[int],
        *,
        seed: int | None = None,
        dtype: Any = "float32",
        name: str = "sequential",
    ) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: entry {i} is a {type(layer).__name__}, not a Layer"
                )
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("Sequential: the same layer object appears twice")
        try:
            self.input_shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
        except TypeError:
            raise TypeError(
                f"input_shape must be a tuple of ints, got {input_shape!r}"
            ) from None
        self.name = name
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)
        self.layers: list[Layer] = []
        shape = self.input_shape
        for i, layer in enumerate(layers):
            shape = self._add(layer, shape, is_output=i == len(layers) - 1)
        self.output_shape = shape
        # Backpropagation can stop at the first layer with parameters: the layers
        # before it have nothing to learn, and nobody needs d(loss)/d(input).
        self._first_trained = next(
            (i for i, layer in enumerate(self.layers) if layer.params), len(self.layers)
        )
        if self._first_trained < len(self.layers):
            self.layers[self._first_trained].needs_input_grad = False
        # How the layers run: one by one, except neighbours fused into one step
        # (Conv2D + MaxPool2D(2), Dense(relu) + Dropout); see tinynet.fusion.
        self._steps = fusion.plan(self.layers)
        # Layers that split the batch over threads themselves (Conv2D) want the BLAS
        # single-threaded for the whole step; see kernels.batch_split.
        self._splits_batch = any(
            getattr(layer, "splits_batch", False) for layer in self.layers
        )
        self.metadata: dict[str, Any] = {}
        self.loss: Any = None
        self.optimizer: Any = None
        self.metrics: list[str] = []
        self.stop_training = False

    def _add(
        self, layer: Layer, shape: tuple[int, ...], *, is_output: bool
    ) -> tuple[int, ...]:
        taken = {lay.name for lay in self.layers}
        if layer.name is None:
            base, k = _snake(type(layer).__name__), 0
            while (candidate := base if k == 0 else f"{base}_{k}") in taken:
                k += 1
            layer.name = candidate
        elif layer.name in taken:
            raise ValueError(f"Sequential: two layers are named {layer.name!r}")
        index = len(self.layers)
        try:
            shape = layer.build(shape, rng=self.rng, dtype=self.dtype)
        except (ValueError, TypeError) as err:
            raise type(err)(f"layer {index} ({layer.describe()}): {err}") from None
        self.layers.append(layer)
        split = getattr(layer, "split_activation", None)
        activation = split() if is_output and split is not None else None
        if activation is not None:
            activation.name = f"{layer.name}_{_snake(type(activation).__name__)}"
            self.layers.append(activation)
        return shape

    # ------------------------------------------------------------ parameters
    def parameters(self) -> dict[str, np.ndarray]:
        """Every trainable array, keyed ``"<layer index>.<name>"`` (``"0.W"``)."""
        return {
            f"{i}.{k}": v
            for i, layer in enumerate(self.layers)
            for k, v in layer.params.items()
        }

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward pass, keyed like ``parameters()``."""
        return {
            f"{i}.{k}": v
            for i, layer in enumerate(self.layers)
            for k, v in layer.grads.items()
        }

    def buffers(self) -> dict[str, np.ndarray]:
        """Saved, untrained state (BatchNorm moving statistics), keyed likewise."""
        return {
            f"{i}.{k}": v
            for i, layer in enumerate(self.layers)
            for k, v in layer.buffers.items()
        }

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers (``"0.W"``, ``"2.moving_mean"``)."""
        return {k: v.copy() for k, v in {**self.parameters(), **self.buffers()}.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers in place, checking every key,
        shape and dtype first so a mismatch changes nothing."""
        targets = {**self.parameters(), **self.buffers()}
        missing = sorted(set(targets) - set(weights))
        unexpected = sorted(set(weights) - set(targets))
        if missing or unexpected:
            raise ValueError(
                f"weights do not match the model: missing {missing}, "
                f"unexpected {unexpected}"
            )
        for key, target in targets.items():
            value = np.asarray(weights[key])
            if value.shape != target.shape:
                raise ValueError(
                    f"weight {key!r}: expected shape {target.shape}, got {value.shape}"
                )
            if not np.issubdtype(value.dtype, np.floating):
                raise ValueError(
                    f"weight {key!r}: expected a float array, got dtype {value.dtype}"
                )
        for key, target in targets.items():
            target[...] = weights[key]

    def astype(self, dtype: Any) -> Sequential:
        """Cast every layer to ``dtype`` in place (float64 for gradient checks).

        Optimizer state is not cast: compile again before training the cast model.
        """
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        self.optimizer = None
        return self

    # ------------------------------------------------------------- running
    def check_inputs(self, x: Any, what: str = "x") -> np.ndarray:
        """Return ``x`` as an array of the model's dtype, or raise saying why not."""
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            hint = ""
            if x.shape == self.input_shape:
                hint = " (a single example: add a batch axis with x[None])"
            elif x.shape[1:] + (1,) == self.input_shape:
                hint = " (add a channel axis with x[..., None])"
            raise ValueError(
                f"{self.name}: expected {what} of shape "
                f"(N, {', '.join(map(str, self.input_shape))}), got {x.shape}{hint}"
            )
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"{self.name}: {what} must be numeric, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"{self.name}: {what} contains NaN or infinite values")
        return x

    def forward(
        self, x: np.ndarray, *, training: bool = False, n_layers: int | None = None
    ) -> np.ndarray:
        """Run every layer (or the first ``n_layers``, which must not end inside a
        fused step). ``x`` : (N, *input_shape) -> (N, *output_shape)."""
        with self._threading():
            for _, step in self._steps_before(n_layers):
                x = step.forward(x, training=training)
        return x

    def _threading(self) -> contextlib.AbstractContextManager:
        if self._splits_batch:
            return batch_split.single_threaded_blas()
        return contextlib.nullcontext()

    def _steps_before(self, n_layers: int | None) -> list[tuple[int, Any]]:
        """The steps that run layers ``[0, n_layers)`` (all of them for None)."""
        if n_layers is None:
            return self._steps
        steps = [(i, step) for i, step in self._steps if i < n_layers]
        last_index, last = steps[-1]
        if isinstance(last, fusion.FusedPair) and last_index + 1 >= n_layers:
            raise ValueError(f"{self.name}: layer {n_layers} is inside a fused step")
        return steps

    def __call__(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.forward(self.check_inputs(x), training=training)

    def _n_trained_layers(self) -> int:
        """How many leading layers a training step runs: all, or all but a fused
        output activation."""
        fused_output = _FUSED_OUTPUTS.get(type(self.loss))
        if fused_output is not None and isinstance(self.layers[-1], fused_output):
            return len(self.layers) - 1
        return len(self.layers)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, loss, backward and one optimizer update on one batch.

        Returns the batch's mean loss and the outputs the loss saw (logits when the
        output activation is fused into the loss), for the metrics.
        """
        steps = self._steps_before(self._n_trained_layers())
        with self._threading():
            out = x
            for _, step in steps:
                out = step.forward(out, training=True)
            loss, dout = self.loss(out, y)
            # A step never starts before the first trained layer and contains it:
            # that layer has parameters, so it is a step's first layer.
            for _, step in reversed([s for s in steps if s[0] >= self._first_trained]):
                dout = step.backward(dout)
            self.optimizer.step(self.parameters(), self.gradients())
        return loss, out

    # ---------------------------------------------------- Keras-like surface
    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = "cross_entropy",
        metrics: Sequence[str] = ("accuracy",),
    ) -> None:
        """Choose the optimizer (name or object), loss (name or object) and metrics."""
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; known metrics: 'accuracy'")
        self.metrics = ["accuracy" for _ in metrics[:1]]

    def fit(self, x: Any, y: Any, **kwargs: Any) -> Any:
        """Train; see ``tinynet.training.fit`` for the arguments. Returns a History."""
        from .training import fit

        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 256) -> dict[str, float]:
        """Mean loss (and accuracy) over ``x, y``; see ``tinynet.training.evaluate``."""
        from .training import evaluate

        return evaluate(self, x, y, batch_size=batch_size)

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` : (N, *input_shape), computed ``batch_size`` at a time.

        A model ending in Softmax returns probabilities (rows sum to 1).
        """
        x = self.check_inputs(x)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) <= batch_size:
            return self.forward(x)
        out = np.empty((len(x), *self.output_shape), dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            out[start : start + batch_size] = self.forward(
                x[start : start + batch_size]
            )
        return out

    def summary(self, print_fn: Any = print) -> str:
        """Print (and return) a Keras-style table: layer, output shape, parameters."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    str((None, *layer.output_shape)),
                    f"{layer.count_params():,}",
                )
            )
        widths = [max(len(r[c]) for r in rows) + 3 for c in range(3)]
        rule = "=" * sum(widths)

        def fmt(r: tuple[str, str, str]) -> str:
            return (r[0].ljust(widths[0]) + r[1].ljust(widths[1]) + r[2]).rstrip()

        trainable = self.count_params()
        saved = sum(v.size for v in self.buffers().values())
        lines = [f'Model: "{self.name}"', rule, fmt(rows[0]), rule]
        lines += [fmt(r) for r in rows[1:]]
        lines += [
            rule,
            f"Total params: {trainable + saved:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {saved:,}",
            "",
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(
        self, path: Any, *, include_optimizer: bool = False, **metadata: Any
    ) -> None:
        """Write architecture, weights and metadata to one ``.npz``; see saving.py."""
        from .saving import save_model

        save_model(self, path, include_optimizer=include_optimizer, metadata=metadata)

    def save_weights(self, path: Any) -> None:
        from .saving import save_weights

        save_weights(self, path)

    def load_weights(self, path: Any) -> None:
        from .saving import load_weights

        load_weights(self, path)

    def _repr_html_(self) -> str:
        """The summary table, for Jupyter."""
        from .jupyter import summary_html

        return summary_html(self)

    def __repr__(self) -> str:
        return f"Sequential({len(self.layers)} layers, input_shape={self.input_shape})"
