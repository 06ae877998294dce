"""Losses: the batch-mean loss and its gradient with respect to the prediction.

Every loss is called as ``loss(pred, target) -> (mean_loss, dpred)``: ``mean_loss`` is
a Python float, and ``dpred`` is d(mean_loss)/d(pred), so the division by the batch
size is already done, with the shape and dtype of ``pred``.

All three losses take raw scores, not probabilities: ``SoftmaxCrossEntropy`` takes
logits (the model splits a final ``Dense(..., activation="softmax")`` into Dense and
Softmax and fuses the softmax into this loss), ``BinaryCrossEntropy`` takes sigmoid
logits. Keras' ``categorical_crossentropy`` names map here with that in mind.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .kernels.losses import softmax_cross_entropy_labels
from .layers.activations import log_softmax, sigmoid, softmax
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


def _check_same_shape(pred: np.ndarray, target: Any, who: str) -> np.ndarray:
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

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        raise NotImplementedError

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

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, numbers.Real)
            or not 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(
                "SoftmaxCrossEntropy: label_smoothing must be a number in [0, 1), "
                f"got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    @staticmethod
    def probabilities(logits: np.ndarray) -> np.ndarray:
        """softmax over the last axis: what the model predicts for these logits."""
        return softmax(logits, axis=-1)

    def _labels(self, logits: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Integer labels ``(N,)``, checked against the logits' ``(N, C)``."""
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

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        logits = _check_pred(pred, "SoftmaxCrossEntropy", ndim=2)
        target = np.asarray(target)
        if target.ndim == 1:
            # Labels: the formula below on one-hot targets, in one pass (kernel).
            labels = self._labels(logits, target)
            dt, c = logits.dtype.type, logits.shape[1]
            off = dt(self.label_smoothing / c)
            on = dt(dt(1 - self.label_smoothing) + off)
            logits = np.ascontiguousarray(logits)
            dpred = np.empty_like(logits)
            loss = softmax_cross_entropy_labels(logits, labels, on, off, dpred)
            return float(loss), dpred
        if target.ndim != 2:
            raise ValueError(
                "SoftmaxCrossEntropy: expected labels (N,) or probabilities (N, C), "
                f"got targets of shape {target.shape}"
            )
        y = self._targets(logits, target)
        n = logits.shape[0]
        log_p = log_softmax(logits, axis=-1)
        loss = -float(np.sum(y * log_p, dtype=np.float64)) / n
        dpred = np.exp(log_p) * np.sum(y, axis=1, keepdims=True) - y
        dpred /= n
        return loss, dpred

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

    def __call__(self, pred: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        z = _check_pred(pred, "BinaryCrossEntropy")
        y = _check_same_shape(z, target, "BinaryCrossEntropy")
        if np.any((y < 0) | (y > 1)):
            raise ValueError("BinaryCrossEntropy: targets must be in [0, 1]")
        per_element = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        loss = float(np.mean(per_element, dtype=np.float64))
        return loss, (sigmoid(z) - y) / z.dtype.type(z.size)


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
