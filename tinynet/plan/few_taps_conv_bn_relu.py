"""Conv2D (linear) -> BatchNorm -> ReLU whose convolution has few taps per output,
with the batch statistics and the gradients taken from small products of the
im2col rows instead of passes over the convolution's output.

Why: a network's first block on 1-channel images (the shipped CNN's
``Conv2D(32, 3)`` on 28x28x1) has ``K = kh * kw * C = 9`` taps per output, so its
output ``z`` (11 MB at batch 128) costs little to compute but much to move:
:class:`~tinynet.plan.ConvBNReLU` writes ``z`` once and reads it four times a
training step (statistics, normalisation, gradient sums, the normalised gradient
``dz``), and writes and reads ``dz`` too. With few taps, every sum over the
pixels that BatchNorm needs is a small product of the (K-wide) im2col rows ``c``,
once each column is centred on its batch mean ``mu`` (taken from the input's
sums), ``c' = c - mu``, so that ``sum c' = 0``:

- forward: ``z = u + mu W + b`` with ``u = c' W``, so the batch mean of ``z`` is
  ``mu W + b`` and its variance ``diag(W^T G W) / M`` with ``G = c'^T c'``, a
  K x K product; one pass then writes ``y = max(u * scale + beta, 0)``;
- backward: one pass takes ``dbeta = sum g`` of the ReLU-masked gradient ``g``
  and ``A = c'^T g`` (K x F) without writing ``g``, the sums in registers
  (``batchnorm.relu_mask_products``; with more than
  ``batchnorm.MAX_MASK_PRODUCTS`` sums, it writes each chunk's ``g`` in cache
  with ``dbeta``, ``batchnorm.relu_mask_sums``, and multiplies). Then ``dgamma =
  sum g xh = inv_std diag(W^T A)`` and the weight gradient ``c^T dz`` of ``dz =
  scale (g - dbeta / M - xh dgamma / M)`` is ``scale (A - dgamma / M inv_std G
  W)``: ``dz`` is never written. Its sum, the bias's
  gradient, is 0 (BatchNorm removes any bias). With an input gradient (not a
  network's first layer), a second pass writes each chunk's ``dz`` for it;
- inference is :class:`~tinynet.plan.ConvBNReLU`'s: BatchNorm folded into the
  convolution.

Measured on the AMD EPYC VM (2026-12-03, the shipped CNN's first block alone,
batch 128, one thread, CPU time, this step and ``ConvBNReLU`` alternated, medians
of 40 and 60 rounds, load average ~6): backward 6.5-7.0 -> 2.9-3.4 ms, forward
unchanged within the noise (4.4-4.6 against 4.3-5.2 ms). In float32, ``G``'s
rounding leaves the output within ~2.5e-6 of float64 (relative to its largest
value; the moments of a stored ``z`` gave ~2e-7) and the weight gradient within
~3e-6 (1.2e-6).

Tried first: direct Numba loops over the taps, recomputing ``z`` in each pass
instead of storing it, took 3.3 ms a pass over the 86,528 rows against 1.0 ms for
the BLAS product in chunks: the multiply-add loop over 32 channels, run once per
tap and pixel, is too short for LLVM's vectorised code to pay (2.5x the time per
multiply-add of the same loop over 128 channels). Recomputing ``z`` by BLAS in
each pass cost about what reading it back did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..kernels import batchnorm, conv
from ..layers.activations import ReLU
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.geometry import float_input
from ..layers.normalization import BatchNorm
from .conv_bn_relu import ConvBNReLU
from .step import ThreadScratch, write_conv_grads

#: Up to this many taps (``kh * kw * C``) per output, a Conv2D -> BatchNorm -> ReLU
#: block runs as :class:`FewTapsConvBNReLU`.
MAX_TAPS = 32


class FewTapsCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C) the input
    cols: np.ndarray  # (N*ho*wo, K) its centred im2col rows c' (the workspace)
    w: np.ndarray  # (K, F) the kernel as a matrix, in the input's dtype
    gram: np.ndarray  # (K, K) c'^T c', float64
    inv_std: np.ndarray  # (F,) 1 / sqrt(batch variance + eps)
    scale: np.ndarray  # (F,) gamma * inv_std
    y: np.ndarray  # (N, ho, wo, F) the output: the ReLU's mask


class FewTapsConvBNReLU(ConvBNReLU):
    """``Conv2D`` (no activation) -> ``BatchNorm`` -> ``ReLU`` with at most
    :data:`MAX_TAPS` taps per output: x : (N, H, W, C) -> (N, ho, wo, F), the
    numbers of the three layers run one by one; the gradients land in the conv's
    and the BatchNorm's ``grads``."""

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        if not super().matches(layers):
            return False
        w = layers[0].params["W"]
        return bool(w.size // w.shape[-1] <= MAX_TAPS)

    def __init__(self, conv_layer: Conv2D, norm: BatchNorm, relu: ReLU) -> None:
        super().__init__(conv_layer, norm, relu)
        self._few_taps: FewTapsCache | None = None
        self._chunk = ThreadScratch()  # a chunk's u = c' W, or its masked gradient

    def _tap_means(self, x: np.ndarray) -> np.ndarray:
        """(K,) float64: the mean of each im2col column over the batch, from the
        input's sums (padding counts as zeros): tap ``(i, j)``'s column sums the
        image-summed input over the ``ho x wo`` window of strided positions it
        reads."""
        layer = self.conv
        ho, wo, pt, pl = self._placement(x.shape)
        (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
        h, w = x.shape[1], x.shape[2]
        total = x.sum(axis=0, dtype=np.float64)  # (H, W, C)
        below = max(0, (ho - 1) * sh + kh - pt - h)
        right = max(0, (wo - 1) * sw + kw - pl - w)
        padded = np.pad(total, ((pt, below), (pl, right), (0, 0)))
        windows = sliding_window_view(padded, (kh, kw), axis=(0, 1))
        sums = windows[: (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]
        means: np.ndarray = sums.sum(axis=(0, 1)).transpose(1, 2, 0).reshape(-1)
        per_pixel: np.ndarray = means / (x.shape[0] * ho * wo)
        return per_pixel

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.conv.check_input(x)
        x = float_input(x, self.conv.dtype)
        if not training:
            self.clear()
            return self._folded_forward(x)
        layer = self.conv
        w, b = self._conv_params(x.dtype)
        kh, kw, _, f = w.shape
        w2d = w.reshape(-1, f)
        k = w2d.shape[0]
        ho, wo, pt, pl = self._placement(x.shape)
        n, pixels = x.shape[0], ho * wo
        cols = self._kept.get((n * pixels, k), x.dtype)
        tap_means = self._tap_means(x)
        centre = tap_means.astype(x.dtype)

        chunk_bytes = pixels * f * x.itemsize  # of u or the masked gradient

        def gram(s: int, e: int) -> np.ndarray:
            rows = cols[s * pixels : e * pixels]
            conv.im2col(x[s:e], kh, kw, *layer.strides, pt, pl, ho, wo, rows)
            rows -= centre
            product: np.ndarray = rows.T @ rows
            return product

        grams = conv.map_chunks(gram, n, chunk_bytes)
        g: np.ndarray = np.stack(grams).sum(axis=0, dtype=np.float64)
        w64 = w2d.astype(np.float64)
        # Sums of z - mean = u and of its square (sum u = (sum c') W = 0).
        sums = np.stack([np.zeros(f), np.sum(w64 * (g @ w64), axis=0)])
        mean = tap_means @ w64 + (0 if b is None else b)
        _, inv_std = self._batch_statistics(sums, mean, n * pixels, x.dtype)
        gamma = self.norm.params["gamma"].astype(x.dtype, copy=False)
        beta = self.norm.params["beta"].astype(x.dtype, copy=False)
        scale = gamma * inv_std
        y = np.empty((n, ho, wo, f), dtype=x.dtype)
        y2 = y.reshape(-1, f)
        zeros = np.zeros(f, x.dtype)

        def normalize(s: int, e: int) -> None:
            rows = slice(s * pixels, e * pixels)
            u = self._chunk.get(((e - s) * pixels, f), x.dtype)
            np.matmul(cols[rows], w2d, out=u)
            batchnorm.normalize_relu(u, zeros, scale, beta, y2[rows])

        conv.map_chunks(normalize, n, chunk_bytes)
        self._few_taps = FewTapsCache(x, cols, w2d, g, inv_std, scale, y)
        return y

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        cache = self._training_cache(self._few_taps)
        if dout.shape != cache.y.shape:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape "
                f"{cache.y.shape}, got {dout.shape}"
            )
        cols, w = cache.cols, cache.w
        n, ho, wo, f = cache.y.shape
        pixels, dtype = ho * wo, cols.dtype
        dy = np.ascontiguousarray(dout, dtype=dtype).reshape(-1, f)
        y2 = cache.y.reshape(-1, f)

        taps = cols.shape[1]

        def masked_products(s: int, e: int) -> tuple[np.ndarray, np.ndarray]:
            rows = slice(s * pixels, e * pixels)
            dbeta = np.zeros(f)
            if (taps + 1) * f <= batchnorm.MAX_MASK_PRODUCTS:
                a = np.zeros((taps, f))
                batchnorm.relu_mask_products(dy[rows], y2[rows], cols[rows], a, dbeta)
                return a, dbeta
            g = self._chunk.get(((e - s) * pixels, f), dtype)
            batchnorm.relu_mask_sums(dy[rows], y2[rows], g, dbeta)
            return cols[rows].T @ g, dbeta

        parts = conv.map_chunks(masked_products, n, pixels * f * dtype.itemsize)
        a, dbeta = (
            np.sum(p, axis=0, dtype=np.float64) for p in zip(*parts, strict=True)
        )
        w64 = w.astype(np.float64)
        inv_std = cache.inv_std.astype(np.float64)
        dgamma = inv_std * np.sum(w64 * a, axis=0)
        self.norm.grads["beta"][...] = dbeta
        self.norm.grads["gamma"][...] = dgamma
        m = n * pixels
        scale = cache.scale.astype(np.float64)
        dw = scale * (a - (dgamma / m * inv_std) * (cache.gram @ w64))
        # The sum of dz: 0, BatchNorm takes any bias out again.
        db = np.zeros(f)
        write_conv_grads(self.conv, dw.reshape(self.conv.params["W"].shape), db)
        if not need_dx:
            return None
        return self._input_gradient(cache, dy, dbeta / m, dgamma / m)

    def _input_gradient(
        self,
        cache: FewTapsCache,
        dy: np.ndarray,
        mean_dbeta: np.ndarray,
        mean_dgamma: np.ndarray,
    ) -> np.ndarray:
        """``dx``: the adjoint of im2col of ``dz W^T``, ``dz`` written chunk by
        chunk from ``u = c' W`` (``batchnorm.normalize_backward``)."""
        layer = self.conv
        x, cols, w, y = cache.x, cache.cols, cache.w, cache.y
        kh, kw = layer.kernel_size
        ho, wo, pt, pl = self._placement(x.shape)
        pixels, f, dtype = ho * wo, w.shape[1], cols.dtype
        y2 = y.reshape(-1, f)
        zeros, inv_std, scale = np.zeros(f, dtype), cache.inv_std, cache.scale
        mean_dbeta, mean_dgamma = mean_dbeta.astype(dtype), mean_dgamma.astype(dtype)
        dx = np.empty(x.shape, dtype)

        def input_gradient(s: int, e: int) -> None:
            rows = slice(s * pixels, e * pixels)
            u = cols[rows] @ w
            dz = batchnorm.normalize_backward(
                dy[rows], y2[rows], u, zeros, inv_std, scale, mean_dbeta,
                mean_dgamma, np.empty_like(u),
            )  # fmt: skip
            conv.col2im(dz @ w.T, kh, kw, *layer.strides, pt, pl, ho, wo, dx[s:e])

        conv.map_chunks(input_gradient, x.shape[0], pixels * f * dtype.itemsize)
        return dx

    def clear(self) -> None:
        self._few_taps = None
        self._chunk.clear()
        super().clear()

    def describe(self) -> str:
        names = " + ".join(layer.name or type(layer).__name__ for layer in self.layers)
        return (
            f"{type(self).__name__}: {names} (im2col rows kept; batch statistics and "
            "gradients from products of the rows, the convolution's output never "
            "stored; BatchNorm folded into the kernel at inference)"
        )


__all__ = ["MAX_TAPS", "FewTapsCache", "FewTapsConvBNReLU"]
