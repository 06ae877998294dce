"""Batch normalisation and fixed input rescaling."""

from __future__ import annotations

from typing import Any, NamedTuple, overload

import numpy as np

from ..checks import real_number
from .base import Layer, Shape


class BatchNormCache(NamedTuple):
    xh: np.ndarray  # (M, C) normalised input
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps)
    ones: np.ndarray  # (M,): channel sums as matrix-vector products


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
        self.momentum = real_number(self.describe(), "momentum", momentum)
        self.epsilon = real_number(self.describe(), "epsilon", epsilon)
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
        self.check_input(x)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            self._store(False, None)
            inv_std = 1.0 / np.sqrt(self.buffers["moving_var"] + self.epsilon)
            y: np.ndarray = (x - self.buffers["moving_mean"]) * (gamma * inv_std) + beta
            return y

        # Work on the (M, C) view: channel sums become BLAS matrix-vector products
        # and einsum reductions, which avoid NumPy's temporaries over leading axes
        # (7.1 -> 3.3 ms forward, 5.1 -> 2.7 ms backward on 128x24x24x32 float32).
        x2 = x.reshape(-1, x.shape[-1])
        ones = np.ones(x2.shape[0], dtype=x.dtype)
        mu = (ones @ x2) / x2.shape[0]
        xh = x2 - mu
        var = np.einsum("ij,ij->j", xh, xh) / x2.shape[0]
        inv_std = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
        xh *= inv_std
        # In place, so the arrays a model or optimizer holds stay the live ones.
        for key, stat in (("moving_mean", mu), ("moving_var", var)):
            moving = self.buffers[key]
            moving *= self.momentum
            moving += (1.0 - self.momentum) * stat
        self._store(True, BatchNormCache(xh, inv_std, ones))
        y = xh * gamma
        y += beta
        return y.reshape(x.shape)

    @overload
    def backward(self, dout: np.ndarray) -> np.ndarray: ...
    @overload
    def backward(self, dout: np.ndarray, *, need_dx: bool) -> np.ndarray | None: ...
    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        xh, inv_std, ones = self._take_cache()
        self._check_dout(dout, dout.shape[0])
        d2 = dout.reshape(xh.shape)
        m = xh.shape[0]
        self.grads["beta"][...] = ones @ d2
        self.grads["gamma"][...] = np.einsum("ij,ij->j", d2, xh)
        if not need_dx:
            return None
        # dx = gamma * inv_std / m * (m * dout - sum(dout) - xh * sum(dout * xh))
        dx: np.ndarray = xh * (self.grads["gamma"] / m)
        dx += self.grads["beta"] / m
        np.subtract(d2, dx, out=dx)
        dx *= self.params["gamma"] * inv_std
        return dx.reshape(dout.shape)

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
        self.scale = real_number(self.describe(), "scale", scale)
        self.offset = real_number(self.describe(), "offset", offset)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.check_input(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(self.dtype)
        self._store(training, x.shape)
        return x * self.scale + self.offset

    def backward(self, dout: np.ndarray) -> np.ndarray:
        shape = self._take_cache()
        self._check_dout(dout, shape[0])
        return dout * self.scale

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset": self.offset, "name": self.name}


__all__ = ["BatchNorm", "Rescaling"]
