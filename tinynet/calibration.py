"""Confidence that means something: temperature scaling and calibration error.

A network trained with cross-entropy tends to be over-confident: among the digits it
reads with confidence 0.99, fewer than 99% are right. Temperature scaling (Guo et al.,
"On Calibration of Modern Neural Networks", 2017) divides the logits by one scalar
``T > 0`` chosen to minimise the negative log-likelihood on held-out data:

    p = softmax(z / T)        T > 1 softens the probabilities, T < 1 sharpens them

It never changes which class wins (argmax is unchanged), only how sure the model says
it is. For a model ending in ``Dense`` + softmax, ``z / T = x (W / T) + b / T``, so
:func:`apply_temperature` folds ``1/T`` into that last layer's weights: the saved
``.npz``, the ONNX and Keras exports and every reader see calibrated probabilities
with no change of format.

    import tinynet
    from tinynet.calibration import calibrate, expected_calibration_error

    temperature = calibrate(model, x_val, y_val)      # fits T, folds it in
    ece = expected_calibration_error(model.predict(x_test), y_test)

The expected calibration error (ECE) groups predictions by confidence into ``bins``
equal-width bins and averages ``|accuracy - mean confidence|`` over the bins, weighted
by how many predictions fall in each: 0 for a perfectly calibrated model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .layers.activations import log_softmax

__all__ = [
    "ReliabilityDiagram",
    "apply_temperature",
    "calibrate",
    "calibration_errors",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probabilities",
    "reliability_diagram",
    "softmax_dense",
    "temperature_nll",
]

#: The range :func:`fit_temperature` searches; a best T at its edge is refused.
TEMPERATURE_RANGE = (0.01, 100.0)

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


# ----------------------------------------------------------------- input checks
def _scores(scores: npt.ArrayLike, name: str, where: str) -> np.ndarray:
    """``scores`` as a finite float64 ``(N, C)`` array with ``N >= 1``."""
    a = np.asarray(scores)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{where}: {name} must have shape (N, C), got {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
        raise TypeError(f"{where}: {name} must be numeric, got {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {name} holds NaN or infinity")
    return a


def _class_labels(labels: npt.ArrayLike, n: int, c: int, where: str) -> np.ndarray:
    """``labels`` as int64 ``(n,)`` with values in ``[0, c)``."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{where}: labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{where}: labels must be integers, got {y.dtype}")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(
            f"{where}: labels must be in [0, {c}) for {c} classes, "
            f"got {int(y.min())}..{int(y.max())}"
        )
    return y.astype(np.int64)


def _probabilities(probs: npt.ArrayLike, where: str) -> np.ndarray:
    p = _scores(probs, "probs", where)
    if p.min() < 0 or p.max() > 1 + 1e-6:
        raise ValueError(f"{where}: probs must lie in [0, 1]")
    return p


# ------------------------------------------------------------ temperature fit
def logits_from_probabilities(probs: npt.ArrayLike) -> np.ndarray:
    """Logits that give back ``probs`` under softmax: ``log(probs)``.

    ``log p = z - logsumexp(z)`` differs from the model's logits ``z`` by one constant
    per row, which softmax ignores, so ``softmax(log(p) / T) == softmax(z / T)``.
    Probabilities that underflowed to 0 are clipped to the smallest positive float32
    (a logit about 103 below the winner's, whose share is still negligible).

    Parameters
    ----------
    probs : (N, C) probabilities (rows sum to 1)

    Returns
    -------
    logits : (N, C) float64
    """
    p = _probabilities(probs, "logits_from_probabilities")
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    logits: np.ndarray = np.log(np.maximum(p, tiny))
    return logits


def temperature_nll(
    logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float
) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``.

    Parameters
    ----------
    logits : (N, C) ; labels : (N,) int in [0, C) ; temperature : T > 0
    """
    z = _scores(logits, "logits", "temperature_nll")
    y = _class_labels(labels, len(z), z.shape[1], "temperature_nll")
    _check_temperature(temperature, "temperature_nll")
    return _nll(z, y, float(temperature))


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    log_p = log_softmax(z / temperature, axis=1)
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(
    logits: npt.ArrayLike, labels: npt.ArrayLike, *, tol: float = 1e-5
) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)``.

    The NLL is convex in ``1/T`` (a log-sum-exp minus a linear term), hence unimodal
    in ``log T``: a golden-section search on ``log T`` over :data:`TEMPERATURE_RANGE`
    finds the minimum to within a factor ``exp(tol)``.

    Parameters
    ----------
    logits : (N, C) held-out logits (or log-probabilities, see
        :func:`logits_from_probabilities`), C >= 2.
    labels : (N,) int true classes.
    tol : width of the final bracket on ``log T``.

    Returns
    -------
    float
        T; above 1 the model was over-confident, below 1 under-confident.

    Raises
    ------
    ValueError
        For fewer than two classes, or when the best T lies at the edge of the range
        (the held-out set is separated perfectly, so the NLL keeps falling as T -> 0,
        or the logits carry no information): no temperature is meaningful then.
    """
    where = "fit_temperature"
    z = _scores(logits, "logits", where)
    if z.shape[1] < 2:
        raise ValueError(f"{where}: need at least 2 classes, got {z.shape[1]}")
    y = _class_labels(labels, len(z), z.shape[1], where)
    if not tol > 0:
        raise ValueError(f"{where}: tol must be > 0, got {tol}")

    def nll(log_t: float) -> float:
        return _nll(z, y, math.exp(log_t))

    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > tol:
        if fa <= fb:  # the minimum is in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = nll(a)
        else:  # the minimum is in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = nll(b)
    temperature = math.exp((lo + hi) / 2)
    low, high = TEMPERATURE_RANGE
    if not low * math.exp(2 * tol) < temperature < high * math.exp(-2 * tol):
        raise ValueError(
            f"{where}: the best temperature lies at the edge of the range "
            f"[{low}, {high}] searched ({len(y)} samples): the held-out set is "
            "classified perfectly or the logits carry no information; use a larger "
            "validation set with some errors"
        )
    return temperature


def _check_temperature(temperature: Any, where: str) -> None:
    if isinstance(temperature, bool) or not isinstance(
        temperature, int | float | np.integer | np.floating
    ):
        raise TypeError(f"{where}: temperature must be a number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{where}: temperature must be > 0, got {temperature}")


# ------------------------------------------------------------- fold into model
def softmax_dense(model: Any) -> Any:
    """The Dense layer whose output the model's softmax reads; ValueError if none.

    Accepts ``Dense(..., activation="softmax")`` last, or a linear ``Dense`` followed
    by a ``Softmax`` layer.
    """
    from .layers.activations import Softmax
    from .layers.dense import Dense

    layers = list(getattr(model, "layers", []))
    name = getattr(model, "name", type(model).__name__)
    if not layers:
        raise ValueError(f"model {name!r} has no layers")
    last = layers[-1]
    if isinstance(last, Dense) and isinstance(last.activation, Softmax):
        return last
    if isinstance(last, Softmax) and len(layers) > 1:
        before = layers[-2]
        if isinstance(before, Dense) and before.activation is None:
            return before
    raise ValueError(
        f"model {name!r} must end in Dense + softmax to fold a temperature into "
        f"it, but it ends in {last.describe()}"
    )


def apply_temperature(model: Any, temperature: float) -> None:
    """Make ``model`` output ``softmax(z / T)``: fold ``1/T`` into its last Dense.

    ``W`` and ``b`` of the Dense layer feeding the softmax are divided by ``T`` in
    place; ``model.metadata["temperature"]`` records the total temperature applied
    (temperatures compose by multiplication).

    Parameters
    ----------
    model : tinynet.Sequential ending in ``Dense(activation="softmax")`` or in a
        linear ``Dense`` then ``Softmax``.
    temperature : T > 0

    Raises
    ------
    ValueError
        If the model does not end in Dense + softmax, or T is not a positive number.
    """
    _check_temperature(temperature, "apply_temperature")
    dense = softmax_dense(model)
    for key in ("W", "b"):
        if key in dense.params:
            param = dense.params[key]
            param *= np.asarray(1.0 / temperature, dtype=param.dtype)
    previous = float(model.metadata.get("temperature", 1.0))
    model.metadata["temperature"] = previous * float(temperature)


def calibrate(
    model: Any, x_val: npt.ArrayLike, y_val: npt.ArrayLike, *, batch_size: int = 256
) -> float:
    """Fit a temperature on held-out data and fold it into ``model``.

    Parameters
    ----------
    model : tinynet.Sequential ending in Dense + softmax (see :func:`apply_temperature`)
    x_val : (N, *model.input_shape) held-out inputs, never trained on
    y_val : (N,) int labels
    batch_size : for ``model.predict``

    Returns
    -------
    float
        The temperature fitted and applied (``model.metadata["temperature"]`` holds the
        total, if the model had been calibrated before).
    """
    softmax_dense(model)  # refuse before the predictions
    probs = model.predict(x_val, batch_size=batch_size)
    temperature = fit_temperature(logits_from_probabilities(probs), y_val)
    apply_temperature(model, temperature)
    return temperature


# ---------------------------------------------------------- calibration error
@dataclass(frozen=True)
class ReliabilityDiagram:
    """Predictions grouped by confidence into equal-width bins.

    Bin ``k`` holds the predictions whose confidence lies in
    ``(edges[k], edges[k + 1]]`` (the first bin also takes 0).

    Attributes
    ----------
    edges : (bins + 1,) float64 from 0 to 1
    counts : (bins,) int64 predictions per bin
    confidence : (bins,) float64 mean confidence per bin (NaN when empty)
    accuracy : (bins,) float64 fraction right per bin (NaN when empty)
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_k n_k / N * |acc_k - conf_k|``."""
        full = self.counts > 0
        gaps = np.abs(self.accuracy[full] - self.confidence[full])
        return float(np.sum(self.counts[full] * gaps) / self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists (an empty bin's confidence and accuracy are None)."""

        def listed(a: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), 6) for v in a]

        return {
            "edges": [round(float(e), 6) for e in self.edges],
            "counts": self.counts.tolist(),
            "confidence": listed(self.confidence),
            "accuracy": listed(self.accuracy),
            "ece": round(self.ece, 6),
        }


def reliability_diagram(
    probs: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 15
) -> ReliabilityDiagram:
    """Accuracy against confidence, bin by bin (the data of a reliability diagram).

    Parameters
    ----------
    probs : (N, C) predicted probabilities; the confidence is the largest one and
        the prediction its class.
    labels : (N,) int true classes in [0, C)
    bins : number of equal-width confidence bins over [0, 1]
    """
    where = "reliability_diagram"
    p = _probabilities(probs, where)
    y = _class_labels(labels, len(p), p.shape[1], where)
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"{where}: bins must be a positive integer, got {bins!r}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Bin k is (k/bins, (k+1)/bins]; a confidence of exactly 0 goes to the first.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, confidence, minlength=bins) / counts
        accuracy = np.bincount(index, correct, minlength=bins) / counts
    return ReliabilityDiagram(
        edges=np.linspace(0.0, 1.0, bins + 1),
        counts=counts.astype(np.int64),
        confidence=mean_conf,
        accuracy=accuracy,
    )


def expected_calibration_error(
    probs: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 15
) -> float:
    """Expected calibration error of ``probs`` against ``labels``, in [0, 1].

    ``ECE = sum_k n_k / N * |accuracy_k - mean confidence_k|`` over ``bins``
    equal-width confidence bins (empty bins count for nothing).

    Parameters
    ----------
    probs : (N, C) probabilities ; labels : (N,) int ; bins : int
    """
    return reliability_diagram(probs, labels, bins).ece


def calibration_errors(
    model: Any,
    sets: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    bins: int = 15,
    batch_size: int = 256,
) -> dict[str, float]:
    """The ECE of ``model`` on each named ``(x, y)`` set, e.g. before and after
    :func:`calibrate`: ``{"validation": 0.012, "test": 0.010}``."""
    return {
        name: expected_calibration_error(
            model.predict(x, batch_size=batch_size), y, bins
        )
        for name, (x, y) in sets.items()
    }
