"""Weight averaging: one model from several points of the same training basin.

Two ways to get the points, one way to combine them:

- **Stochastic weight averaging** (SWA, Izmailov et al. 2018): the weights at the end
  of the last epochs of one run with a constant (or cyclic) learning rate; see
  :class:`tinynet.callbacks.WeightAveraging`.
- **A model soup** (Wortsman et al. 2022): several fine-tunes of the same starting
  model with other seeds or settings, averaged with :func:`average_weights`.

The average of the weights is one model, as fast as each member; it tends to sit in
a wider, flatter part of the loss surface, which generalises better than any single
end point. Averaging only works for points of one basin: fine-tunes of one start,
not networks trained from different random initialisations.

BatchNorm's moving statistics do not average: the mean of the members' statistics is
not the statistics of the averaged network's activations. :func:`refresh_batchnorm`
recomputes them exactly on training images after averaging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .layers import BatchNorm

__all__ = ["average_weights", "refresh_batchnorm"]


def _architecture(model: Any) -> tuple[Any, ...]:
    """What must match for weights to be averaged: input shape and the layers'
    types and configs (names aside: a rebuilt model may name its layers anew)."""
    layers = tuple(
        (
            type(layer).__name__,
            {k: v for k, v in layer.get_config().items() if k != "name"},
        )
        for layer in model.layers
    )
    return model.input_shape, repr(layers)


def average_weights(models: Sequence[Any]) -> dict[str, np.ndarray]:
    """The element-wise mean of the parameters and buffers of ``models``.

    Parameters
    ----------
    models : tinynet.Sequential models of one architecture (same layers, shapes and
        configs), e.g. fine-tunes of one starting model.

    Returns
    -------
    dict
        Keyed like ``model.get_weights()`` (``"0.W"``, ``"1.moving_mean"``), in the
        first model's dtype; give it to ``model.set_weights``. The BatchNorm buffers
        are averaged too, as a starting point only: call :func:`refresh_batchnorm`
        after setting them.

    Raises
    ------
    ValueError
        If ``models`` is empty or a model's architecture differs from the first's.
    """
    models = list(models)
    if not models:
        raise ValueError("average_weights: no models given")
    first = _architecture(models[0])
    for i, model in enumerate(models[1:], start=1):
        if _architecture(model) != first:
            raise ValueError(
                f"average_weights: model {i} ({model.name}) has another architecture "
                f"than model 0 ({models[0].name}); only models of the same layers "
                "and shapes can be averaged"
            )
    members = [model.get_weights() for model in models]
    return {
        key: np.mean([m[key] for m in members], axis=0, dtype=np.float64).astype(
            value.dtype
        )
        for key, value in members[0].items()
    }


def refresh_batchnorm(model: Any, x: npt.ArrayLike, *, batch_size: int = 256) -> int:
    """Set every BatchNorm's moving statistics to their exact values over ``x``.

    BatchNorm layers are visited in order; for each, the images go through the
    layers before it in inference mode (earlier BatchNorms already refreshed), and
    its ``moving_mean`` / ``moving_var`` become the mean and biased variance of its
    input over all ``N * H * W`` positions of all images: what the moving averages
    estimate, without their dependence on the last few hundred batches.

    Parameters
    ----------
    model : tinynet.Sequential
    x : (N, *model.input_shape) training images (never the validation or test
        images the model is then judged on).
    batch_size : images per forward pass.

    Returns
    -------
    int
        How many BatchNorm layers were refreshed (0 leaves the model unchanged).

    Raises
    ------
    ValueError
        If ``x`` has the wrong shape or is empty, or ``batch_size < 1``.
    """
    images: np.ndarray = model.check_inputs(x)
    if len(images) == 0:
        raise ValueError("refresh_batchnorm: needs at least one image")
    if batch_size < 1:
        raise ValueError(
            f"refresh_batchnorm: batch_size must be >= 1, got {batch_size}"
        )
    positions = [
        i for i, layer in enumerate(model.layers) if isinstance(layer, BatchNorm)
    ]
    for index in positions:
        mean, var = _input_moments(model.layers[:index], images, batch_size)
        bn = model.layers[index]
        bn.buffers["moving_mean"][...] = mean
        bn.buffers["moving_var"][...] = var
    return len(positions)


def _input_moments(
    layers: Sequence[Any], x: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of the output of ``layers`` over ``x``,
    combined batch by batch (Chan et al.'s pairwise update, in float64)."""
    count, mean, m2 = 0, 0.0, 0.0
    for start in range(0, len(x), batch_size):
        h = x[start : start + batch_size]
        for layer in layers:
            h = layer.forward(h, training=False)
        h = h.reshape(-1, h.shape[-1]).astype(np.float64)
        n = len(h)
        batch_mean = h.mean(axis=0)
        batch_m2 = ((h - batch_mean) ** 2).sum(axis=0)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + batch_m2 + delta**2 * (count * n / total)
        count = total
    return np.asarray(mean), np.asarray(m2) / count
