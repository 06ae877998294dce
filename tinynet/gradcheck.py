"""Numerical gradient checks: centred finite differences in float64.

For a scalar function f, the centred difference

    df/dx_i ~= (f(x + h e_i) - f(x - h e_i)) / (2 h)

has error O(h^2), against O(h) for the one-sided form (CS231n, "gradient checks").
Analytic and numerical gradients are compared by the relative error

    rel_error(a, n) = max_i |a_i - n_i| / max(|a_i| + |n_i|, floor)

where the floor keeps entries whose true gradient is ~0 from dividing by ~0. To
compare two implementations in float32 (tinynet against Keras), ``per="array"``
measures against the arrays' scale instead, ``max|a - n| / max(max|a|, max|n|)``:
an entry that is 1e-9 because of cancellation carries no relative accuracy, while
the array as a whole must agree to a few ulps.

A layer is checked through the scalar ``L = sum(forward(x) * g)`` for a fixed random
``g``, whose gradient with respect to the output is exactly ``g``: so ``backward(g)``
must return ``dL/dx`` and fill ``grads[k] = dL/dparams[k]`` for every k.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .layers.base import Shape

DEFAULT_EPS = 1e-5
DEFAULT_FLOOR = 1e-8


def rel_error(
    analytic: Any,
    numeric: Any,
    floor: float = DEFAULT_FLOOR,
    *,
    per: str = "entry",
) -> float:
    """Largest relative error between two arrays of the same shape, relative to
    each entry (``per="entry"``) or to the arrays' scale (``per="array"``); see
    the module docstring."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"shapes differ: {analytic.shape} vs {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    if per == "array":
        size = max(np.abs(analytic).max(), np.abs(numeric).max())
        return float(np.abs(analytic - numeric).max() / size) if size > 0 else 0.0
    if per != "entry":
        raise ValueError(f"per must be 'entry' or 'array', got {per!r}")
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(np.max(np.abs(analytic - numeric) / scale))


def numerical_gradient(
    f: Callable[[], float], x: np.ndarray, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Centred-difference gradient of the scalar ``f()`` with respect to ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored afterwards, so ``f``
    must read ``x`` (for example a parameter array the layer holds).
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat_x, x):
        raise ValueError("x must be contiguous so it can be perturbed in place")
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + eps
        f_plus = f()
        flat_x[i] = original - eps
        f_minus = f()
        flat_x[i] = original
        flat_g[i] = (f_plus - f_minus) / (2.0 * eps)
    return grad


class Differentiable(Protocol):
    """What :func:`check_layer` uses: a built Layer, or a step of a model's plan."""

    rng: np.random.Generator | None

    @property
    def dtype(self) -> np.dtype: ...
    @property
    def output_shape(self) -> Shape | None: ...
    @property
    def params(self) -> dict[str, np.ndarray]: ...
    @property
    def grads(self) -> dict[str, np.ndarray]: ...
    def describe(self) -> str: ...
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray: ...
    def backward(self, dout: np.ndarray) -> np.ndarray | None: ...


def check_layer(
    layer: Differentiable,
    x: np.ndarray,
    *,
    eps: float = DEFAULT_EPS,
    seed: int = 0,
    training: bool = True,
) -> dict[str, float]:
    """Compare ``layer.backward`` with numerical gradients; return the relative errors.

    Parameters
    ----------
    layer : a built float64 Layer, or a step of a model's plan (``model.plan``),
        which has the same forward/backward/params/grads surface.
    x : (N, *layer.input_shape) float64 input.
    training : run forward in training mode. Layers that draw random numbers in
        training mode (Dropout) are re-seeded before every forward, so the same mask
        is used for every evaluation.

    Returns
    -------
    ``{"x": err, "W": err, ...}``: the relative error of the input gradient and of
    every parameter gradient.
    """
    if layer.dtype != np.float64 or x.dtype != np.float64:
        raise TypeError(
            f"{layer.describe()}: gradient checks run in float64; got layer dtype "
            f"{layer.dtype} and input dtype {x.dtype}"
        )
    if layer.output_shape is None:
        raise RuntimeError(f"{layer.describe()} is not built")
    x = np.ascontiguousarray(x).copy()
    g = np.random.default_rng(seed + 1).standard_normal(
        (x.shape[0], *layer.output_shape)
    )

    def run(inp: np.ndarray) -> np.ndarray:
        layer.rng = np.random.default_rng(seed)
        return layer.forward(inp, training=training)

    # Forward with training=True updates BatchNorm running statistics; those are not
    # inputs to the training-mode output, so repeated calls still see the same function.
    def loss() -> float:
        return float(np.sum(run(x) * g))

    run(x)
    dx = layer.backward(g)
    if dx is None:
        raise RuntimeError(f"{layer.describe()}: backward returned no input gradient")
    analytic = {"x": dx.copy(), **{k: v.copy() for k, v in layer.grads.items()}}

    errors = {"x": rel_error(analytic["x"], numerical_gradient(loss, x, eps))}
    for key, param in layer.params.items():
        errors[key] = rel_error(analytic[key], numerical_gradient(loss, param, eps))
    return errors


def check_loss(
    loss_fn: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    pred: np.ndarray,
    target: np.ndarray,
    *,
    eps: float = DEFAULT_EPS,
) -> float:
    """Relative error of a loss's analytic gradient with respect to its prediction.

    ``loss_fn(pred, target) -> (mean_loss, dpred)`` as the losses in
    ``tinynet.losses`` return them.
    """
    pred = np.ascontiguousarray(pred, dtype=np.float64).copy()
    _, analytic = loss_fn(pred, target)
    numeric = numerical_gradient(lambda: float(loss_fn(pred, target)[0]), pred, eps)
    return rel_error(analytic, numeric)
