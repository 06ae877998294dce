"""Fully connected layer."""

from __future__ import annotations

from typing import Any, overload

import numpy as np

from .. import initializers
from ..checks import count, flag
from .activations import ActivationMixin
from .base import Layer, Shape


class Dense(ActivationMixin, Layer):
    """Affine map ``x @ W + b`` with an optional owned activation.

    Forward:  z = x W + b,  y = act(z)           x : (N, in), W : (in, units)
    Backward: dz = act'(dout),  dW = x^T dz,  db = sum_n dz,  dx = dz W^T

    Parameters
    ----------
    units : number of outputs.
    activation : None/"linear", an activation name ("relu", "softmax", ...) or an
        activation layer; the layer owns it (see ``split_activation``).
    use_bias : whether to add ``b`` (no ``"b"`` parameter when False).
    kernel_initializer, bias_initializer : names or callables from
        ``tinynet.initializers``; Keras' defaults.

    Inputs must be 2-D ``(N, in)``: put a ``Flatten()`` in front of image inputs.
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.units = count(self.describe(), "units", units, 1)
        self.use_bias = flag(self.describe(), "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._init_activation(activation)

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.describe()}: expected 2-D input (batch, features), got input "
                f"shape (batch, {', '.join(map(str, input_shape))}); add a Flatten() "
                "layer before it"
            )
        w = self.kernel_initializer((input_shape[0], self.units), rng, self.dtype)
        self.params["W"] = np.asarray(w, self.dtype)
        if self.use_bias:
            b = self.bias_initializer((self.units,), rng, self.dtype)
            self.params["b"] = np.asarray(b, self.dtype)
        self._build_activation((self.units,), rng, self.dtype)
        return (self.units,)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, in) -> y : (N, units); the cache is x."""
        self.check_input(x)
        z = x @ self.params["W"]
        if self.use_bias:
            z += self.params["b"]
        self._store(training, x)
        return self._activate(z, training)

    @overload
    def backward(self, dout: np.ndarray) -> np.ndarray: ...
    @overload
    def backward(self, dout: np.ndarray, *, need_dx: bool) -> np.ndarray | None: ...
    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        """dout : (N, units) -> dx : (N, in) (None if not ``need_dx``); fills grads."""
        x: np.ndarray = self._take_cache()
        self._check_dout(dout, x.shape[0])
        dz = self._activation_backward(dout)
        # Into the existing arrays: anyone holding grads["W"] sees the update.
        np.matmul(x.T, dz, out=self.grads["W"])
        if self.use_bias:
            np.sum(dz, axis=0, out=self.grads["b"])
        return dz @ self.params["W"].T if need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self._activation_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "name": self.name,
        }


__all__ = ["Dense"]
