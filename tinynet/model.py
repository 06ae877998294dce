"""``Sequential``: a stack of layers built for one input shape, trained as one model.

The model owns the plumbing a layer should not care about: building every layer at
definition time (so a shape mistake fails there, naming the layer), naming parameters
(``"0.W"``, ``"3.gamma"``) and the one seeded random Generator. How the layers run
is its ``plan`` (``tinynet.plan``, where every speed trick lives); the training loop
lives in ``training.py`` and saving in ``saving.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .layers.base import Layer
from .plan import Plan
from .weights import copy_checked


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # Conv2D -> conv2d


class _LayerNames:
    """Keras-style names (``dense``, ``dense_1``, ...) in constant time per layer, so
    building a model stays linear in its number of layers."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next_suffix: dict[str, int] = {}

    def claim(self, name: str) -> None:
        if name in self._taken:
            raise ValueError(f"Sequential: two layers are named {name!r}")
        self._taken.add(name)

    def new(self, base: str) -> str:
        """The first free name of ``base``, ``base_1``, ``base_2``, ..."""
        k = self._next_suffix.get(base, 0)
        while (name := base if k == 0 else f"{base}_{k}") in self._taken:
            k += 1
        self._next_suffix[base] = k + 1
        self.claim(name)
        return name


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : the layers, in order. The output layer's own activation (``Dense(10,
        activation="softmax")``) becomes a layer of its own at the end of
        ``model.layers``, so that training can pair it with the loss; hidden layers
        keep theirs.
    input_shape : shape of one example, without the batch axis, e.g. ``(28, 28, 1)``.
    seed : seeds the model's ``numpy.random.Generator``, which draws the initial
        weights and, unless ``fit`` is given its own seed, shuffling, dropout and
        augmentation. Same seed, same weights, bit for bit.
    dtype : ``"float32"`` (default) or ``"float64"`` (for gradient checks).
    fuse : run neighbouring layers as the plan's composite steps where one matches
        (default), or every layer as its specification (``fuse=False``). Both give
        the same numbers up to float rounding; ``model.plan`` shows the steps.
    """

    def __init__(
        self,
        layers: Iterable[Layer],
        input_shape: Sequence[int],
        *,
        seed: int | None = None,
        dtype: Any = "float32",
        name: str = "sequential",
        fuse: bool = True,
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
        names = _LayerNames()
        for i, layer in enumerate(layers):
            shape = self._add(layer, shape, names, is_output=i == len(layers) - 1)
        self.output_shape = shape
        if not isinstance(fuse, bool):
            raise TypeError(f"fuse must be True or False, got {fuse!r}")
        self.fuse = fuse
        self._plan: Plan | None = None
        self._plan_for: tuple[Any, bool] | None = None
        self.metadata: dict[str, Any] = {}
        self.loss: Any = None
        self.optimizer: Any = None
        self.metrics: list[str] = []
        self.stop_training = False

    def _add(
        self,
        layer: Layer,
        shape: tuple[int, ...],
        names: _LayerNames,
        *,
        is_output: bool,
    ) -> tuple[int, ...]:
        if layer.name is None:
            layer.name = names.new(_snake(type(layer).__name__))
        else:
            names.claim(layer.name)
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
        shape, dtype and value (finite) first so a mismatch changes nothing."""
        targets = {**self.parameters(), **self.buffers()}
        copy_checked(targets, weights, source=f"{self.name}.set_weights")

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
    def check_inputs(
        self, x: npt.ArrayLike, what: str = "x", *, convert: bool = True
    ) -> np.ndarray:
        """Return ``x`` as an array of the model's dtype, or raise saying why not.

        ``convert=False`` keeps ``x``'s own numeric dtype, for inputs that are
        scaled batch by batch (``input_scale`` of fit, evaluate and predict).
        """
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as err:  # ragged nested lists
            raise TypeError(
                f"{self.name}: {what} must be an array of numbers ({err})"
            ) from None
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
        if x.dtype.kind not in "biuf":  # complex would silently lose its imaginary part
            raise TypeError(
                f"{self.name}: {what} must be numeric (real: bool, int or float), "
                f"got dtype {x.dtype}"
            )
        if convert:
            x = x.astype(self.dtype, copy=False)
        # A finite sum means every entry is finite, and it allocates nothing (the
        # entrywise test allocates a mask the size of x: 47 MB for MNIST's training
        # set); only a sum that is not finite (or overflowed) is checked entrywise.
        if (
            x.dtype.kind == "f"
            and not np.isfinite(x.sum())
            and not np.isfinite(x).all()
        ):
            raise ValueError(f"{self.name}: {what} contains NaN or infinite values")
        return x

    @property
    def plan(self) -> Plan:
        """How the layers run (``tinynet.plan``): rebuilt when the loss or ``fuse``
        changes. ``print(model.plan)`` lists its steps."""
        key = (self.loss, self.fuse)
        if self._plan is None or self._plan_for != key:
            self._plan = Plan(self.layers, self.loss, fuse=self.fuse)
            self._plan_for = key
        return self._plan

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """Run the model: ``x`` : (N, *input_shape) -> (N, *output_shape)."""
        return self.plan.forward(x, training=training)

    def __call__(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.forward(self.check_inputs(x), training=training)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, loss, backward and one optimizer update on one batch.

        Returns the batch's mean loss and the outputs the loss saw (the logits when
        the model ends in the loss's output activation), for the metrics.
        """
        if self.optimizer is None:
            raise RuntimeError("call model.compile(...) before train_step()")
        loss, out = self.plan.loss_and_gradients(x, y)
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

    def evaluate(
        self,
        x: Any,
        y: Any,
        *,
        batch_size: int = 256,
        input_scale: float | None = None,
    ) -> dict[str, float]:
        """Mean loss (and accuracy) over ``x, y``; see ``tinynet.training.evaluate``."""
        from .training import evaluate

        return evaluate(self, x, y, batch_size=batch_size, input_scale=input_scale)

    def predict(
        self, x: Any, *, batch_size: int = 256, input_scale: float | None = None
    ) -> np.ndarray:
        """Outputs for ``x`` : (N, *input_shape), computed ``batch_size`` at a time.

        A model ending in Softmax returns probabilities (rows sum to 1).
        ``input_scale``: the model reads ``x * input_scale``, one batch at a time
        (e.g. ``1 / 255`` for uint8 pixels; see ``tinynet.training.fit``).
        """
        from .training import check_input_scale, read_inputs

        input_scale = check_input_scale("predict", input_scale)
        x = self.check_inputs(x, convert=input_scale is None)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) <= batch_size:
            return self.forward(read_inputs(x, input_scale, self.dtype))
        out = np.empty((len(x), *self.output_shape), dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            out[start : start + batch_size] = self.forward(
                read_inputs(x[start : start + batch_size], input_scale, self.dtype)
            )
        return out

    def summary(self, print_fn: Any = print) -> str:
        """Print (and return) a Keras-style table (layer, output shape, parameters)
        followed by the plan the layers run in."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    str((None, *layer.built_shapes()[1])),
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
            self.plan.describe(),
            "",
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(
        self, path: Any, *, include_optimizer: bool = False, **metadata: Any
    ) -> None:
        """Write architecture, weights and metadata to one ``.npz``; see saving.py.

        The file keeps ``self.metadata`` (what a loaded file carried, or what
        calibration recorded), updated by the keyword arguments given here.
        """
        from .saving import save_model

        save_model(
            self,
            path,
            include_optimizer=include_optimizer,
            metadata={**self.metadata, **metadata},
        )

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
