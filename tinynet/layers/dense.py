"""Fully connected layer."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import initializers
from ..kernels.dropout import bias_relu_dropout, relu_dropout_backward
from .activations import ActivationMixin, ReLU
from .base import Layer, Shape
from .dropout import Dropout


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
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError(f"{self.describe()}: units must be an int, got {units!r}")
        if units <= 0:
            raise ValueError(f"{self.describe()}: units must be positive, got {units}")
        if not isinstance(use_bias, bool):
            raise TypeError(
                f"{self.describe()}: use_bias must be True or False, got {use_bias!r}"
            )
        self.units = int(units)
        self.use_bias = use_bias
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
        (fan_in,) = input_shape
        self.params = {
            "W": self.kernel_initializer((fan_in, self.units), rng, self.dtype)
        }
        if self.use_bias:
            self.params["b"] = self.bias_initializer((self.units,), rng, self.dtype)
        for key, value in self.params.items():
            if value.dtype != self.dtype:
                raise TypeError(
                    f"{self.describe()}: initializer for {key!r} returned "
                    f"{value.dtype}, expected {self.dtype}"
                )
        self._build_activation((self.units,), rng, self.dtype)
        return (self.units,)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x)
        z = x @ self.params["W"]
        if self.use_bias:
            z += self.params["b"]
        self._store(training, x)
        return self._activate(z, training)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x = self._take_cache()
        if isinstance(x, tuple):
            raise RuntimeError(
                f"{self.describe()}: the last forward was forward_dropout(); call "
                "backward_dropout()"
            )
        self._check_dout(dout, (x.shape[0], self.units))
        return self._backward_from(x, self._activation_backward(dout))

    def _backward_from(
        self, x: np.ndarray, dz: np.ndarray, *, bias_done: bool = False
    ) -> np.ndarray | None:
        """Fill the grads from the input and the pre-activation gradient (the bias's
        unless ``bias_done``); return dx."""
        # Write into the existing arrays: anyone holding grads["W"] sees the update.
        np.matmul(x.T, dz, out=self.grads["W"])
        if self.use_bias and not bias_done:
            np.sum(dz, axis=0, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        return dz @ self.params["W"].T

    # ------------------------------------------------ fused with a Dropout after it
    def can_fuse_dropout(self, dropout: Layer) -> bool:
        """Whether ``dropout`` right after this layer can run fused into it
        (:meth:`forward_dropout`): a Dropout with a positive rate, after a Dense that
        owns a ReLU."""
        return (
            type(dropout) is Dropout
            and dropout.rate > 0
            and dropout.input_shape == (self.units,)
            and type(self.activation) is ReLU
        )

    def forward_dropout(
        self, x: np.ndarray, dropout: Dropout, *, training: bool = False
    ) -> np.ndarray:
        """This layer then ``dropout``, fused: x : (N, in) -> y : (N, units), equal
        to ``dropout.forward(self.forward(x, training), training)`` and drawing the
        same mask from ``dropout.rng``.

        Training: the bias, the ReLU and the mask are one pass over the matmul's
        output (``tinynet.kernels.dropout``); what is kept for backward is ``x`` and
        ``y``. Inference: the layer alone (dropout is the identity). The model calls
        this when :meth:`can_fuse_dropout` holds (``tinynet.fusion``).
        """
        if not training:
            return dropout.forward(self.forward(x), training=False)
        self._check_input(x)
        # The two layers' own caches would be stale: drop them, so that calling
        # their backward after this fails loudly.
        self.activation._store(False, None)
        dropout._store(False, None)
        y = np.ascontiguousarray(x @ self.params["W"])
        if self.use_bias:
            b = self.params["b"].astype(y.dtype, copy=False)
        else:
            b = np.zeros(self.units, dtype=y.dtype)
        key, threshold = dropout.draw()
        scale = dropout.scale(y.dtype)
        bias_relu_dropout(y, b, key, threshold, scale)
        self._store(True, (x, y, scale))
        return y

    def backward_dropout(self, dout: np.ndarray) -> np.ndarray | None:
        """Backward of :meth:`forward_dropout`: dout : (N, units) -> dx : (N, in)
        (None when ``needs_input_grad`` is False); fills the grads."""
        cache = self._take_cache()
        if not isinstance(cache, tuple):
            raise RuntimeError(
                f"{self.describe()}: backward_dropout() needs a preceding "
                "forward_dropout(x, training=True)"
            )
        x, y, scale = cache
        self._check_dout(dout, y.shape)
        dout = np.ascontiguousarray(dout, dtype=y.dtype)
        dz = np.empty_like(y)
        fused_bias = self.use_bias and self.grads["b"].dtype == y.dtype
        db = self.grads["b"] if fused_bias else np.empty(self.units, y.dtype)
        relu_dropout_backward(dout, y, scale, dz, db)
        return self._backward_from(x, dz, bias_done=fused_bias)

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
