"""2-D convolution (NHWC, Keras kernel shape ``(kh, kw, cin, cout)``)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import initializers
from ..kernels import PADDINGS, conv, window_geometry, winograd
from .activations import ActivationMixin, ReLU
from .base import Layer, Shape


def as_pair(value: Any, what: str, who: str) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 2) -> (3, 2)``; anything else but positive ints raises."""
    pair = value if isinstance(value, tuple | list) else (value, value)
    if len(pair) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
        for v in pair
    ):
        raise ValueError(
            f"{who}: {what} must be a positive int or a pair of positive ints, "
            f"got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def check_padding(padding: Any, who: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"{who}: padding must be one of {PADDINGS}, got {padding!r}")
    return padding


def sliding_geometry(
    who: str,
    input_shape: Shape,
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    what: str,
) -> tuple[int, tuple[int, int, int, int]]:
    """Check an (H, W, C) input for a sliding window; return ``C`` and
    ``(pad_top, pad_left, out_h, out_w)``. Shared by Conv2D and the pools."""
    if len(input_shape) != 3:
        raise ValueError(
            f"{who}: expected inputs of shape (batch, height, width, channels), "
            f"i.e. an input_shape (height, width, channels); got {input_shape}"
        )
    h, w, c = input_shape
    ho, pt = window_geometry(h, window[0], strides[0], padding)
    wo, pl = window_geometry(w, window[1], strides[1], padding)
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"{who}: {what} {window[0]}x{window[1]} is larger than the {h}x{w} input "
            f"(input_shape {input_shape}) with padding='valid'"
        )
    return c, (pt, pl, ho, wo)


def float_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous float array: float32/float64 kept, others -> dtype."""
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(dtype)
    return np.ascontiguousarray(x)


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
    ``(N, ho, wo, F)``.
    """

    #: The kernels split the batch over threads themselves (kernels.batch_split).
    splits_batch = True

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
        if (
            not isinstance(filters, numbers.Integral)
            or isinstance(filters, bool)
            or filters <= 0
        ):
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"{who}: use_bias must be a bool, got {use_bias!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", who)
        self.strides = as_pair(strides, "strides", who)
        self.padding = check_padding(padding, who)
        self.use_bias = use_bias
        try:
            self.kernel_initializer = initializers.get(kernel_initializer)
            self.bias_initializer = initializers.get(bias_initializer)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{who}: {err}") from None
        self._init_activation(activation)
        self._geometry: tuple[int, int, int, int] = (0, 0, 0, 0)
        # im2col scratch kept between training steps; inference drops it.
        self._workspace: np.ndarray | None = None

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        c, self._geometry = sliding_geometry(
            self.describe(), input_shape, self.kernel_size, self.strides,
            self.padding, "kernel",
        )  # fmt: skip
        kh, kw = self.kernel_size
        ho, wo = self._geometry[2:]
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
        """x : (N, H, W, C) -> y : (N, ho, wo, F), in the dtype of ``x``.

        An owned ReLU is fused into the convolution (applied with the bias in one
        pass; backward masks ``dout`` with ``y > 0``); other activations run as
        their own layer.
        """
        self._check_input(x)
        x = float_input(x, self.dtype)
        w = self.params["W"].astype(x.dtype, copy=False)
        b = self.params["b"].astype(x.dtype, copy=False) if self.use_bias else None
        pt, pl, ho, wo = self._geometry
        relu = type(self.activation) is ReLU
        cols = (
            self._buffer((x.shape[0] * ho * wo, w.size // self.filters), x.dtype)
            if training
            else None  # inference: a chunk-sized scratch buffer is enough
        )
        z, cols = conv.conv2d_forward(
            x, w, b, *self.strides, pt, pl, ho, wo, cols, relu
        )
        if not training:
            self._workspace = None
        if relu:
            # z is already max(z, 0); its positive entries are the ReLU's mask. Layers
            # never write into their input, so keeping a reference to it is safe.
            self._store(training, (x, cols, w, z))
            return z
        self._store(training, (x, cols, w, None))
        return self._activate(z, training)

    def can_fuse_pool(self, pool: Layer) -> bool:
        """Whether ``pool`` right after this layer can run fused into it
        (:meth:`forward_pooled`): a 2x2 max-pool with stride 2 and ``"valid"``
        padding, after a convolution that is linear or owns a ReLU."""
        from .pooling import MaxPool2D

        return (
            type(pool) is MaxPool2D
            and pool.pool_size == (2, 2)
            and pool.strides == (2, 2)
            and pool.padding == "valid"
            and (self.activation is None or type(self.activation) is ReLU)
        )

    def forward_pooled(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """This layer then ``MaxPool2D(2)``, fused: x : (N, H, W, C) -> p : (N, ho //
        2, wo // 2, F), equal to ``pool.forward(self.forward(x))``.

        The convolution's output is pooled as it leaves the matmul, and never stored
        whole; see ``tinynet.kernels.convpool`` for why this is exact. A 3x3 stride-1
        kernel over ``winograd.MIN_CHANNELS`` or more channels runs by Winograd
        F(2x2, 3x3) (``tinynet.kernels.winograd``), other shapes by im2col. The
        model calls this when :meth:`can_fuse_pool` holds (``tinynet.fusion``).
        """
        self._check_input(x)
        x = float_input(x, self.dtype)
        w = self.params["W"].astype(x.dtype, copy=False)
        b = self.params["b"].astype(x.dtype, copy=False) if self.use_bias else None
        pt, pl, ho, wo = self._geometry
        n, c = x.shape[0], x.shape[3]
        p = np.empty((n, ho // 2, wo // 2, self.filters), dtype=x.dtype)
        argmax = np.empty(p.shape, dtype=np.uint8)
        relu = self.activation is not None
        if self._winograd():
            # Kept for backward: the transformed input, 16 planes of (tiles, C).
            shape = (16, n * (ho // 2) * (wo // 2), c)
            kept = self._buffer(shape, x.dtype) if training else None
            winograd.conv3x3_pool_forward(x, w, b, pt, pl, relu, kept, p, argmax)
        else:
            shape = (n * ho * wo, w.size // self.filters)
            kept = self._buffer(shape, x.dtype) if training else None
            conv.conv2d_forward(
                x, w, b, *self.strides, pt, pl, ho, wo, kept, relu, (p, argmax)
            )
        if not training:
            self._workspace = None
        self._store(training, (x, kept, w, (p, argmax, relu, ho, wo)))
        return p

    def _winograd(self) -> bool:
        return (
            self.kernel_size == (3, 3)
            and self.strides == (1, 1)
            and self.input_shape[2] >= winograd.MIN_CHANNELS
        )

    def backward_pooled(self, dout: np.ndarray) -> np.ndarray:
        """Backward of :meth:`forward_pooled`: dout : (N, ho // 2, wo // 2, F) -> dx :
        (N, H, W, C) (None when ``needs_input_grad`` is False); fills the grads."""
        x, kept, w, pooled = self._take_cache()
        if not isinstance(pooled, tuple):
            raise RuntimeError(
                f"{self.describe()}: backward_pooled() needs a preceding "
                "forward_pooled(x, training=True)"
            )
        p, argmax, relu = pooled[:3]
        self._check_dout(dout, p.shape)
        dout = np.ascontiguousarray(dout, dtype=x.dtype)
        pt, pl, _, _ = self._geometry
        if self._winograd():
            dx, dw, db = winograd.conv3x3_pool_backward(
                dout, p, argmax, relu, kept, w, pt, pl, x.shape, self.needs_input_grad
            )
        else:
            dx, dw, db = conv.conv2d_backward(
                dout, x, kept, w, *self.strides, pt, pl, self.needs_input_grad,
                pool=pooled,
            )  # fmt: skip
        self.grads["W"][...] = dw
        if self.use_bias:
            self.grads["b"][...] = db
        return dx

    def _buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The im2col (or Winograd input) buffer a training forward keeps for
        backward, reused across steps of the same batch size.

        Writing into memory the process already holds is measurably faster than
        into a fresh allocation (im2col of the MNIST conv layers: 0.5 against 0.9
        ms). The previous step's buffer is dead by then: the cache is replaced.
        """
        buf = self._workspace
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._workspace = buf
        return buf

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ho, wo, F) -> dx : (N, H, W, C); fills grads["W"], grads["b"].

        Returns None instead of dx when ``needs_input_grad`` is False.
        """
        x, cols, w, y = self._take_cache()
        if isinstance(y, tuple):
            raise RuntimeError(
                f"{self.describe()}: the last training forward was forward_pooled(); "
                "call backward_pooled()"
            )
        self._check_dout(dout, (x.shape[0], *self.output_shape))
        dz = dout if y is not None else self._activation_backward(dout)
        dz = np.ascontiguousarray(dz, dtype=x.dtype)
        pt, pl, _, _ = self._geometry
        dx, dw, db = conv.conv2d_backward(
            dz, x, cols, w, *self.strides, pt, pl, self.needs_input_grad, y
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
