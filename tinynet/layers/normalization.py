"""Batch normalisation and fixed input rescaling."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .base import Layer, Shape


def _real(value: Any, what: str, who: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
    ):
        raise ValueError(f"{who}: {what} must be a finite number, got {value!r}")
    return float(value)


class BatchNorm(Layer):
    """Batch normalisation over every axis but the last (channels last).

    Works after Dense ``(N, C)`` and after Conv2D ``(N, H, W, C)``: each channel is
    normalised over its M = N*H*W values (Ioffe & Szegedy 2015).

    Forward (training):  mu, var = mean and biased variance of x over M values
                         xh = (x - mu) / sqrt(var + eps),  y = gamma * xh + beta
    Forward (inference): the same with moving_mean, moving_var in place of mu, var
    Backward (compact form of CS231n assignment 2, ``batchnorm_backward_alt``):
        dbeta = sum(dout),  dgamma = sum(dout * xh)
        dx = gamma / (M sqrt(var + eps)) * (M dout - dbeta - xh * dgamma)

    Each training forward updates, as Keras does (biased batch variance),
    ``moving = momentum * moving + (1 - momentum) * batch_statistic``.

    Parameters
    ----------
    momentum : in [0, 1]; Keras' default 0.99.
    epsilon : > 0, added to the variance; Keras' default 1e-3.
    """

    has_training_mode = True

    def __init__(
        self, momentum: float = 0.99, epsilon: float = 1e-3, *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.momentum = _real(momentum, "momentum", self.describe())
        self.epsilon = _real(epsilon, "epsilon", self.describe())
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(
                f"{self.describe()}: momentum must be in [0, 1], got {momentum!r}"
            )
        if self.epsilon <= 0.0:
            raise ValueError(f"{self.describe()}: epsilon must be > 0, got {epsilon!r}")

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        channels = input_shape[-1]
        self.params = {
            "gamma": np.ones(channels, dtype=self.dtype),
            "beta": np.zeros(channels, dtype=self.dtype),
        }
        self.buffers = {
            "moving_mean": np.zeros(channels, dtype=self.dtype),
            "moving_var": np.ones(channels, dtype=self.dtype),
        }
        return input_shape

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            self._store(False, None)
            inv_std = 1.0 / np.sqrt(self.buffers["moving_var"] + self.epsilon)
            return (x - self.buffers["moving_mean"]) * (gamma * inv_std) + beta

        axes = tuple(range(x.ndim - 1))
        mu = x.mean(axis=axes)
        var = x.var(axis=axes)
        inv_std = 1.0 / np.sqrt(var + self.epsilon)
        xh = (x - mu) * inv_std
        # In place, so the arrays a model or optimizer holds stay the live ones.
        for key, stat in (("moving_mean", mu), ("moving_var", var)):
            moving = self.buffers[key]
            moving *= self.momentum
            moving += (1.0 - self.momentum) * stat
        self._store(True, (xh, inv_std))
        return gamma * xh + beta

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xh, inv_std = self._take_cache()
        self._check_dout(dout, xh.shape)
        axes = tuple(range(dout.ndim - 1))
        m = dout.size // dout.shape[-1]
        np.sum(dout, axis=axes, out=self.grads["beta"])
        np.sum(dout * xh, axis=axes, out=self.grads["gamma"])
        scale = self.params["gamma"] * inv_std / m
        return scale * (m * dout - self.grads["beta"] - xh * self.grads["gamma"])

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "epsilon": self.epsilon, "name": self.name}


class Rescaling(Layer):
    """Fixed affine rescaling ``y = x * scale + offset``; no parameters.

    Forward:  y = x * scale + offset
    Backward: dx = dout * scale

    Puts input normalisation inside the model, e.g. MNIST pixels in [0, 255] to
    zero mean, unit variance: ``Rescaling(1 / (255 * 0.3081), -0.1307 / 0.3081)``.
    Integer inputs (uint8 images) are converted to the layer's dtype first.
    """

    def __init__(
        self, scale: float = 1.0, offset: float = 0.0, *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.scale = _real(scale, "scale", self.describe())
        self.offset = _real(offset, "offset", self.describe())

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(self.dtype)
        self._store(training, x.shape)
        return x * self.scale + self.offset

    def backward(self, dout: np.ndarray) -> np.ndarray:
        shape = self._take_cache()
        self._check_dout(dout, shape)
        return dout * self.scale

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset": self.offset, "name": self.name}


__all__ = ["BatchNorm", "Rescaling"]
