"""A convolution over one input channel with few filters, then a 2x2 max-pool,
computed directly: no im2col matrix, written or kept.

This is the first layer of a grayscale network such as the speedrun net's (5x5, 8
filters, 28x28 -> 24x24 -> pool 12x12). With K = kh * kw taps and F filters, im2col
writes K floats per conv pixel and the matmul then does only F multiply-adds per
float it reads (8 for the speedrun's layer): the time goes to moving the matrix,
not to arithmetic. Here each image is read in place.

Forward, for one image and one filter ``f``: the conv output over *full-width rows*
(the conv pixels ``m = oy * W + ox`` for every ``ox < W``, of which the last
``kw - 1`` of a row are wrap-around garbage the pool never reads) is

    z[f, m] = sum over taps t = (i, j) of w[i, j, f] * x_flat[m + i * W + j],

a sum of whole shifted rows of the image: long contiguous loops that vectorise.
The pool then takes the four entries of each window from ``z`` (the bias and ReLU
after the max, as in :mod:`tinynet.kernels.convpool`, whose rules for ties and
odd sizes hold here too).

Backward rebuilds the masked conv gradient ``dz`` (the pooled gradient at each
window's winner, 0 elsewhere, garbage columns 0) and takes ``dw[f, t]`` as a dot
product of ``dz[f]`` with the same shifted rows; the input gradient, when asked
for, scatters each winner's gradient through the kernel.

Measured at batch 128, one thread, CPU time, against the im2col path of
:mod:`tinynet.kernels.conv` (``conv2d_forward`` / ``conv2d_backward`` with the pool
fused): the speedrun's 5x5, 8-filter layer, forward 1.7 against 2.9 ms, weight
gradient 1.75 against 1.9 ms. With 32 filters (the classic convnet's 3x3 first
layer) im2col wins (forward 3.0 against 4.0 ms), so the plan uses this path below
:data:`MAX_FILTERS` filters only.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from . import batch_split, serial_kernel
from .convpool import window_max

#: The direct path is taken for fewer filters than this (module docstring).
MAX_FILTERS = 16


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _shifted_row_dots(
    dz: np.ndarray, image: np.ndarray, offsets: np.ndarray, dw_t: np.ndarray
) -> None:
    """``dw_t[f, t] += dot(dz[f], image[offsets[t]:offsets[t] + L])``, L =
    ``dz.shape[1]``. Reassociated, so the sums vectorise (their order then
    depends on the CPU's vector width, never on the thread count)."""
    length = dz.shape[1]
    for f in range(dz.shape[0]):
        d = dz[f]
        for t in range(offsets.shape[0]):
            shifted = image[offsets[t] : offsets[t] + length]
            s = d[0] - d[0]
            for m in range(length):
                s += d[m] * shifted[m]
            dw_t[f, t] += s


@numba.njit(inline="always")
def _tap_offsets(kh: int, kw: int, width: int) -> np.ndarray:
    """Offset of each tap ``t = i * kw + j`` in a flattened image: ``i * W + j``."""
    offsets = np.empty(kh * kw, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            offsets[i * kw + j] = i * width + j
    return offsets


@serial_kernel
def conv_pool_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    relu: bool,
    out: np.ndarray,
    argmax: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``out = maxpool2x2(conv(x, w)) + b`` (then the ReLU), and the winners.

    Parameters
    ----------
    x : (N, H, W, 1) C-contiguous input; w : (kh, kw, 1, F); b : (F,) (zeros for
        none). Stride 1, no padding.
    relu : apply the ReLU after the bias.
    out, argmax : (N, P, Q, F) buffers with ``P = (H - kh + 1) // 2`` and ``Q =
        (W - kw + 1) // 2``, fully overwritten as by
        :func:`tinynet.kernels.convpool.pool_bias_relu`.

    Returns
    -------
    (out, argmax)
    """
    n, _, width, _ = x.shape
    kh, kw, _, f = w.shape
    po, qo = out.shape[1], out.shape[2]
    # The conv pixels the pool reads, in full-width rows: up to the last window's
    # bottom-right entry.
    length = (2 * po - 1) * width + 2 * qo
    k = kh * kw
    offsets = _tap_offsets(kh, kw, width)
    w_t = np.ascontiguousarray(w.reshape(k, f).T)  # (F, K): a filter's taps together
    z = np.empty((f, length), dtype=out.dtype)
    images = x.reshape(n, -1)
    for bi in range(n):
        image = images[bi]
        for fi in range(f):
            zf, wf = z[fi], w_t[fi]
            zf[:] = 0
            # Four taps per pass over the row: one load and store of z per four
            # multiply-adds.
            t = 0
            while t + 4 <= k:
                w0, w1, w2, w3 = wf[t], wf[t + 1], wf[t + 2], wf[t + 3]
                x0 = image[offsets[t] : offsets[t] + length]
                x1 = image[offsets[t + 1] : offsets[t + 1] + length]
                x2 = image[offsets[t + 2] : offsets[t + 2] + length]
                x3 = image[offsets[t + 3] : offsets[t + 3] + length]
                for m in range(length):
                    zf[m] += w0 * x0[m] + w1 * x1[m] + w2 * x2[m] + w3 * x3[m]
                t += 4
            for rest in range(t, k):
                w0 = wf[rest]
                x0 = image[offsets[rest] : offsets[rest] + length]
                for m in range(length):
                    zf[m] += w0 * x0[m]
        for p in range(po):
            for q in range(qo):
                r = 2 * p * width + 2 * q
                o, a = out[bi, p, q], argmax[bi, p, q]
                for fi in range(f):
                    zf = z[fi]
                    o[fi], a[fi] = window_max(
                        zf[r], zf[r + 1], zf[r + width], zf[r + width + 1], b[fi], relu
                    )
    return out, argmax


@serial_kernel
def conv_pool_weight_grad(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    x: np.ndarray,
    dw_t: np.ndarray,
    db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Add the weight and bias gradients of :func:`conv_pool_forward` to ``dw_t``
    and ``db``.

    Parameters
    ----------
    dout, p, argmax : (N, P, Q, F) the pooled gradient, output and winners.
    relu : whether the forward pass applied the ReLU.
    x : (N, H, W, 1) the forward input.
    dw_t : (F, kh, kw) accumulator (transposed: a filter's taps together).
    db : (F,) accumulator.

    Returns
    -------
    (dw_t, db)
    """
    n, po, qo, f = dout.shape
    width = x.shape[2]
    kh, kw = dw_t.shape[1], dw_t.shape[2]
    length = (2 * po - 1) * width + 2 * qo  # as in conv_pool_forward
    offsets = _tap_offsets(kh, kw, width)
    dz = np.zeros((f, length), dtype=dw_t.dtype)  # entries off the windows stay 0
    images = x.reshape(n, -1)
    sums = dw_t.reshape(f, kh * kw)
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                r = 2 * i * width + 2 * j
                d, pv, a = dout[bi, i, j], p[bi, i, j], argmax[bi, i, j]
                for fi in range(f):
                    g = d[fi] * (pv[fi] > 0) if relu else d[fi]
                    db[fi] += g
                    k, dzf = a[fi], dz[fi]
                    dzf[r] = g * (k == 0)
                    dzf[r + 1] = g * (k == 1)
                    dzf[r + width] = g * (k == 2)
                    dzf[r + width + 1] = g * (k == 3)
        _shifted_row_dots(dz, images[bi], offsets, sums)
    return dw_t, db


@serial_kernel
def conv_pool_input_grad(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    w: np.ndarray,
    dx: np.ndarray,
) -> np.ndarray:
    """The input gradient of :func:`conv_pool_forward`: each window's gradient,
    at its winner, scattered through the kernel.

    Parameters
    ----------
    dout, p, argmax, relu : as for :func:`conv_pool_weight_grad`.
    w : (kh, kw, 1, F).
    dx : (N, H, W, 1) buffer, fully overwritten.

    Returns
    -------
    dx
    """
    n, po, qo, f = dout.shape
    kh, kw = w.shape[0], w.shape[1]
    dx[:] = 0
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                d, pv, a = dout[bi, i, j], p[bi, i, j], argmax[bi, i, j]
                for fi in range(f):
                    g = d[fi] * (pv[fi] > 0) if relu else d[fi]
                    oy, ox = 2 * i + (a[fi] >> 1), 2 * j + (a[fi] & 1)
                    for ki in range(kh):
                        for kj in range(kw):
                            dx[bi, oy + ki, ox + kj, 0] += g * w[ki, kj, 0, fi]
    return dx


def forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    relu: bool,
    out: np.ndarray,
    argmax: np.ndarray,
) -> np.ndarray:
    """:func:`conv_pool_forward` with the batch split over threads
    (:mod:`tinynet.kernels.batch_split`); ``b`` None for no bias. Returns ``out``."""
    bias = np.zeros(w.shape[3], x.dtype) if b is None else b.astype(x.dtype)

    def share(start: int, stop: int) -> None:
        conv_pool_forward(
            x[start:stop], w, bias, relu, out[start:stop], argmax[start:stop]
        )

    batch_split.run(share, len(x))
    return out


def backward(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    x: np.ndarray,
    w: np.ndarray,
    need_dx: bool,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`forward`: ``(dx or None, dw : (kh, kw, 1, F), db : (F,))``
    for ``dout : (N, P, Q, F)``; the shares' sums are added in share order."""
    kh, kw, _, f = w.shape
    dx = np.empty(x.shape, dtype=dout.dtype) if need_dx else None

    def share(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(start, stop)
        dw_t = np.zeros((f, kh, kw), dtype=dout.dtype)
        db = np.zeros(f, dtype=dout.dtype)
        conv_pool_weight_grad(
            dout[part], p[part], argmax[part], relu, x[part], dw_t, db
        )
        if dx is not None:
            conv_pool_input_grad(dout[part], p[part], argmax[part], relu, w, dx[part])
        return dw_t, db

    parts = batch_split.run(share, len(x))
    dw_t = functools.reduce(np.add, (part[0] for part in parts))
    db = functools.reduce(np.add, (part[1] for part in parts))
    dw = np.ascontiguousarray(dw_t.transpose(1, 2, 0)).reshape(w.shape)
    return dx, dw, db


__all__ = [
    "MAX_FILTERS",
    "backward",
    "conv_pool_forward",
    "conv_pool_input_grad",
    "conv_pool_weight_grad",
    "forward",
]
