"""Losses: the batch-mean loss and its gradient with respect to the prediction.

Every loss is called as ``loss(pred, target) -> (mean_loss, dpred)``: ``mean_loss`` is
a Python float, and ``dpred`` is d(mean_loss)/d(pred), so the division by the batch
size is already done, with the shape and dtype of ``pred``.

All three losses take raw scores, not probabilities: ``SoftmaxCrossEntropy`` takes
logits, ``BinaryCrossEntropy`` takes sigmoid logits. Keras' ``categorical_crossentropy``
names map here with that in mind. A model that ends in the loss's
``output_activation`` (a final ``Dense(10, activation="softmax")`` becomes Dense and
Softmax) hands the loss the activation's input: ``fuse=True`` computes the loss and
``dlogits`` from the logits in one step (``tinynet.plan``), ``fuse=False`` runs the
activation layer and ``on_probabilities`` and backpropagates through the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .checks import is_real
from .layers.activations import Sigmoid, Softmax, log_softmax, sigmoid, softmax
from .layers.base import Layer
from .registry import from_spec, to_spec


def _check_pred(pred: Any, who: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(pred, np.ndarray) or not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(
            f"{who}: predictions must be a floating-point numpy array, got "
            f"{getattr(pred, 'dtype', type(pred).__name__)}"
        )
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(
            f"{who}: expected predictions of shape (N, C), got shape {pred.shape}"
        )
    if pred.ndim == 0 or pred.shape[0] == 0:
        raise ValueError(f"{who}: expected a non-empty batch, got shape {pred.shape}")
    return pred


def _check_same_shape(pred: np.ndarray, target: npt.ArrayLike, who: str) -> np.ndarray:
    target = np.asarray(target)
    if target.dtype == object or not np.issubdtype(target.dtype, np.number):
        raise TypeError(f"{who}: targets must be numeric, got dtype {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{who}: expected targets of shape {pred.shape} (as the predictions), "
            f"got {target.shape}"
        )
    return target.astype(pred.dtype, copy=False)


class Loss:
    """Base class: ``name``, ``__call__`` and ``get_config``."""

    name: str = "loss"

    #: The output activation whose outputs ``on_probabilities`` takes (Softmax for
    #: cross-entropy): a model ending in it trains on its input, the logits.
    output_activation: type[Layer] | None = None

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def on_probabilities(
        self, probs: np.ndarray, target: Any
    ) -> tuple[float, np.ndarray]:
        """The same loss from the output activation's output, and its gradient with
        respect to that output (for losses with an ``output_activation``)."""
        raise NotImplementedError(f"{type(self).__name__} takes no probabilities")

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused, on logits.

    With p = softmax(z) and target distribution y (one row per sample):

        L = -(1/N) sum_n sum_c y_nc log p_nc,     log p = z - logsumexp(z)
        dL/dz = (p * sum_c y_c - y) / N           = (p - y) / N when rows sum to 1

    Parameters
    ----------
    label_smoothing : in [0, 1); y becomes (1 - s) y + s / C (Keras' rule).

    Targets are integer labels ``(N,)`` in ``[0, C)`` or probabilities ``(N, C)``
    (one-hot or soft).
    """

    name = "softmax_cross_entropy"
    output_activation = Softmax

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not is_real(label_smoothing) or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "SoftmaxCrossEntropy: label_smoothing must be a number in [0, 1), "
                f"got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    @staticmethod
    def probabilities(logits: np.ndarray) -> np.ndarray:
        """softmax over the last axis: what the model predicts for these logits."""
        return softmax(logits, axis=-1)

    def check_labels(self, logits: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Integer labels ``(N,)`` as intp, checked against the logits' ``(N, C)``."""
        who = "SoftmaxCrossEntropy"
        n, c = logits.shape
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError(
                f"{who}: labels of shape (N,) must be integers, got dtype "
                f"{target.dtype}; pass integer class labels or (N, {c}) "
                "probabilities"
            )
        if target.shape[0] != n:
            raise ValueError(
                f"{who}: expected {n} labels (one per prediction), got "
                f"{target.shape[0]}"
            )
        if target.min() < 0 or target.max() >= c:
            raise ValueError(
                f"{who}: labels must be in [0, {c - 1}] for {c} classes, got "
                f"values in [{target.min()}, {target.max()}]"
            )
        return target.astype(np.intp, copy=False)

    def _targets(self, logits: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(N, C) target distribution (smoothed), in the logits' dtype."""
        who = "SoftmaxCrossEntropy"
        n, c = logits.shape
        if target.shape != (n, c):
            raise ValueError(
                f"{who}: expected targets of shape ({n}, {c}) to match the "
                f"logits, got {target.shape}"
            )
        y = _check_same_shape(logits, target, who)
        if np.any(y < 0):
            raise ValueError(f"{who}: target probabilities must be >= 0")
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / c
        return y

    def target_distribution(self, pred: np.ndarray, target: Any) -> np.ndarray:
        """(N, C) target distribution (smoothed) for labels (N,) or probabilities
        (N, C), checked against the predictions ``pred : (N, C)``."""
        target = np.asarray(target)
        if target.ndim == 1:
            labels = self.check_labels(pred, target)
            target = np.eye(pred.shape[1], dtype=pred.dtype)[labels]
        elif target.ndim != 2:
            raise ValueError(
                "SoftmaxCrossEntropy: expected labels (N,) or probabilities (N, C), "
                f"got targets of shape {target.shape}"
            )
        return self._targets(pred, target)

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        logits = _check_pred(pred, "SoftmaxCrossEntropy", ndim=2)
        y = self.target_distribution(logits, target)
        n = logits.shape[0]
        log_p = log_softmax(logits, axis=-1)
        loss = -float(np.sum(y * log_p, dtype=np.float64)) / n
        dpred = np.exp(log_p) * np.sum(y, axis=1, keepdims=True) - y
        dpred /= n
        return loss, dpred

    def on_probabilities(
        self, probs: np.ndarray, target: Any
    ) -> tuple[float, np.ndarray]:
        """L = -(1/N) sum y log p and dL/dp = -y / (N p), for p = softmax(z).

        p is clipped below at the dtype's ``tiny``: an underflowed probability
        gives a large finite loss instead of infinity.
        """
        p = _check_pred(probs, "SoftmaxCrossEntropy", ndim=2)
        y = self.target_distribution(p, target)
        safe = np.maximum(p, np.finfo(p.dtype).tiny)
        n = p.shape[0]
        loss = -float(np.sum(y * np.log(safe), dtype=np.float64)) / n
        return loss, -y / safe / p.dtype.type(n)

    def get_config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}


class MeanSquaredError(Loss):
    """Mean squared error, Keras' reduction (mean over the last axis, then batch).

        L = (1/N) sum_n (1/D) sum_d (pred_nd - y_nd)^2
        dL/dpred = 2 (pred - y) / (N D)

    For equally sized rows that is the mean over all elements. Targets have the
    predictions' shape.
    """

    name = "mean_squared_error"

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        pred = _check_pred(pred, "MeanSquaredError")
        diff = pred - _check_same_shape(pred, target, "MeanSquaredError")
        loss = float(np.mean(np.square(diff), dtype=np.float64))
        return loss, diff * pred.dtype.type(2.0 / diff.size)


class BinaryCrossEntropy(Loss):
    """Sigmoid cross-entropy on logits, in the overflow-free softplus form.

        L = mean over all elements of  max(z, 0) - z y + log(1 + exp(-|z|))
          (= -y log s(z) - (1 - y) log(1 - s(z)) for s = sigmoid)
        dL/dz = (sigmoid(z) - y) / (number of elements)

    Predictions ``(N,)`` or ``(N, K)`` (K independent binary outputs); targets of
    the same shape with values in [0, 1].
    """

    name = "binary_crossentropy"
    output_activation = Sigmoid

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        z = _check_pred(pred, "BinaryCrossEntropy")
        y = _check_same_shape(z, target, "BinaryCrossEntropy")
        if np.any((y < 0) | (y > 1)):
            raise ValueError("BinaryCrossEntropy: targets must be in [0, 1]")
        per_element = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        loss = float(np.mean(per_element, dtype=np.float64))
        return loss, (sigmoid(z) - y) / z.dtype.type(z.size)

    def on_probabilities(
        self, probs: np.ndarray, target: Any
    ) -> tuple[float, np.ndarray]:
        """L = mean(-y log s - (1 - y) log(1 - s)), dL/ds = (s - y) / (s (1 - s) M)
        for s = sigmoid(z) and M elements; s is clipped into [eps, 1 - eps]."""
        s = _check_pred(probs, "BinaryCrossEntropy")
        y = _check_same_shape(s, target, "BinaryCrossEntropy")
        if np.any((y < 0) | (y > 1)):
            raise ValueError("BinaryCrossEntropy: targets must be in [0, 1]")
        eps = np.finfo(s.dtype).eps
        s = np.clip(s, eps, 1 - eps)
        per_element = -(y * np.log(s) + (1 - y) * np.log1p(-s))
        loss = float(np.mean(per_element, dtype=np.float64))
        return loss, (s - y) / (s * (1 - s)) / s.dtype.type(s.size)


LOSSES: dict[str, type[Loss]] = {
    cls.__name__: cls
    for cls in (SoftmaxCrossEntropy, MeanSquaredError, BinaryCrossEntropy)
}

_ALIASES: dict[str, type[Loss]] = {
    "cross_entropy": SoftmaxCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
}


def get(loss: str | Loss) -> Loss:
    """A loss by name (see ``_ALIASES``) or the given ``Loss`` instance itself."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in _ALIASES:
            raise ValueError(
                f"unknown loss {loss!r}; known losses: {', '.join(sorted(_ALIASES))}"
            )
        return _ALIASES[loss]()
    raise TypeError(
        f"loss must be a name or a Loss instance, got {type(loss).__name__}"
    )


def to_config(loss: Loss) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}`` for a registered loss."""
    return to_spec(loss, LOSSES, "loss")


def from_config(spec: Any) -> Loss:
    """Rebuild a loss from ``{"class_name": ..., "config": {...}}`` (fixed registry)."""
    return from_spec(spec, LOSSES, "loss")


__all__ = [
    "LOSSES",
    "BinaryCrossEntropy",
    "Loss",
    "MeanSquaredError",
    "SoftmaxCrossEntropy",
    "from_config",
    "get",
    "to_config",
]
