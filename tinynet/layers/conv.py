"""2-D convolution (NHWC, Keras kernel shape ``(kh, kw, cin, cout)``)."""

from __future__ import annotations

from typing import Any, NamedTuple, overload

import numpy as np

from .. import initializers
from ..checks import flag, is_integer
from ..kernels import conv
from .activations import ActivationMixin
from .base import Layer, Shape
from .geometry import as_pair, check_padding, float_input, sliding_output_shape


class ConvCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C) the input
    cols: np.ndarray  # (N*ho*wo, kh*kw*C) its receptive fields, one row per pixel
    w: np.ndarray  # (kh, kw, C, F) the kernel, in the input's dtype


class Conv2D(ActivationMixin, Layer):
    """2-D convolution over NHWC inputs, with an optional owned activation.

    Forward:  z[n, oy, ox, f] = b[f] + sum_{i, j, c} xpad[n, oy*sh + i, ox*sw + j, c]
                                        * W[i, j, c, f];   y = activation(z)
    Backward: with cols = im2col(x) (one row per output pixel) and dZ = dz as rows,
              dW = cols^T dZ,  db = sum of the rows of dZ,  dx = col2im(dZ W^T)

    Parameters
    ----------
    filters : number of output channels F.
    kernel_size, strides : int or (height, width) pair.
    padding : ``"valid"`` (no padding; output ``(H - kh) // sh + 1``) or ``"same"``
        (output ``ceil(H / sh)``, zero padding split as Keras does, extra row/column
        at the bottom/right).
    activation : None, a name (``"relu"``) or an activation layer; see
        ``tinynet.layers.activations``.
    use_bias : whether to add a per-filter bias ``b : (F,)``.
    kernel_initializer, bias_initializer : names in ``tinynet.initializers``.

    Shapes: input ``(N, H, W, C)``, kernel ``W : (kh, kw, C, F)``, output
    ``(N, ho, wo, F)``. The arithmetic is ``tinynet.kernels.conv`` (im2col and one
    matrix product); its naive twin is ``tinynet.kernels.reference.conv2d``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        who = self.describe()
        if not is_integer(filters) or filters <= 0:
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", who)
        self.strides = as_pair(strides, "strides", who)
        self.padding = check_padding(padding, who)
        self.use_bias = flag(who, "use_bias", use_bias)
        try:
            self.kernel_initializer = initializers.get(kernel_initializer)
            self.bias_initializer = initializers.get(bias_initializer)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{who}: {err}") from None
        self._init_activation(activation)

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        ho, wo, c = sliding_output_shape(
            self.describe(), input_shape, self.kernel_size, self.strides,
            self.padding, "kernel",
        )  # fmt: skip
        kh, kw = self.kernel_size
        self.params["W"] = np.asarray(
            self.kernel_initializer((kh, kw, c, self.filters), rng, self.dtype),
            dtype=self.dtype,
        )
        if self.use_bias:
            self.params["b"] = np.asarray(
                self.bias_initializer((self.filters,), rng, self.dtype),
                dtype=self.dtype,
            )
        out_shape = (ho, wo, self.filters)
        self._build_activation(out_shape, rng, self.dtype)
        return out_shape

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, H, W, C) -> y : (N, ho, wo, F), in the dtype of ``x``."""
        self.check_input(x)
        x = float_input(x, self.dtype)
        w = self.params["W"].astype(x.dtype, copy=False)
        b = self.params["b"].astype(x.dtype, copy=False) if self.use_bias else None
        z, cols = conv.conv2d(x, w, b, self.strides, self.padding, training)
        self._store(training, None if cols is None else ConvCache(x, cols, w))
        return self._activate(z, training)

    @overload
    def backward(self, dout: np.ndarray) -> np.ndarray: ...
    @overload
    def backward(self, dout: np.ndarray, *, need_dx: bool) -> np.ndarray | None: ...
    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        """dout : (N, ho, wo, F) -> dx : (N, H, W, C) (None if not ``need_dx``);
        fills grads["W"], grads["b"]."""
        x, cols, w = self._take_cache()
        self._check_dout(dout, x.shape[0])
        dz = np.ascontiguousarray(self._activation_backward(dout), dtype=x.dtype)
        dx, dw, db = conv.conv2d_grads(
            dz, x, cols, w, self.strides, self.padding, need_dx
        )
        self.grads["W"][...] = dw
        if self.use_bias:
            self.grads["b"][...] = db
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "activation": self._activation_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


__all__ = ["Conv2D"]
