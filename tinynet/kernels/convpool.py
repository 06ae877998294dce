"""Epilogue kernels that fuse a 2x2 max-pool into the convolution before it.

``Conv2D(F, k, activation="relu") -> MaxPool2D(2)`` is the building block of the
classic MNIST convnet. Run as two layers, the full-resolution activation ``y`` goes
through memory four times: the bias/ReLU pass writes it, the pool reads it, the pool
backward writes its gradient and the ReLU mask reads that again. Fused (the plan's
``ConvPool`` step, ``tinynet/plan/conv_pool.py``), the convolution's matmul output
``z`` (no bias) is pooled as it leaves the matmul, and backward rebuilds the masked
gradient ``dz`` straight from the pooled gradient. What is kept for backward is
what ``MaxPool2D`` keeps: the pooled output ``p`` and ``argmax``, which of the four
window entries won, per channel.

The fusion is exact:

- a bias is the same for the four entries of a window, and ReLU is monotone, so
  ``max_k relu(z_k + b) = relu(max_k z_k + b)``: the pool takes the maximum of the
  raw matmul output, and the bias and ReLU are applied once, to the pooled value;
- the ReLU's gradient at the winning entry is ``[z_win + b > 0] = [p > 0]``, so
  ``dz[win] = dp * [p > 0]`` and ``dz = 0`` at the three other entries.

Ties go to the first maximum in row-major order, as in ``MaxPool2D``. The pooled
grid is ``(ho // 2, wo // 2)``: as with ``MaxPool2D(2)`` and ``"valid"`` padding, a
last odd row or column of the conv output is dropped and gets no gradient.

What the fusion gains in a training step is measured in ``tinynet/plan/conv_pool.py``.
"""

from __future__ import annotations

import numba
import numpy as np

from . import serial_kernel


@numba.njit(inline="always")
def window_max(
    z00: float, z01: float, z10: float, z11: float, b: float, relu: bool
) -> tuple[float, int]:
    """The pooled value of one channel of a 2x2 window, ``max + b`` (then the ReLU),
    and which entry won, ``2a + c`` for ``z_ac`` (the first in row-major order on
    ties). Inlined into channel loops, which stay vectorised."""
    m, k = z00, 0
    if z01 > m:
        m, k = z01, 1
    if z10 > m:
        m, k = z10, 2
    if z11 > m:
        m, k = z11, 3
    m += b
    if relu and m < 0:
        m = m - m  # a zero of m's own type (a literal 0 would widen m to float64)
    return m, k


@numba.njit(inline="always")
def pool_rows(
    z: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> None:
    """Pool conv rows ``z`` (at least 2P x 2Q x F) into ``out`` and ``argmax`` (P, Q, F)
    by :func:`window_max`, window ``(a, c)`` from rows ``2a, 2a + 1`` and columns
    ``2c, 2c + 1``. Inlined: the channel loop stays vectorised."""
    for a in range(out.shape[0]):
        top, bottom = z[2 * a], z[2 * a + 1]
        for c in range(out.shape[1]):
            # The four rows held in registers: this channel loop vectorises.
            z00, z01 = top[2 * c], top[2 * c + 1]
            z10, z11 = bottom[2 * c], bottom[2 * c + 1]
            o, k = out[a, c], argmax[a, c]
            for ch in range(out.shape[2]):
                o[ch], k[ch] = window_max(
                    z00[ch], z01[ch], z10[ch], z11[ch], b[ch], relu
                )


@numba.njit(inline="always")
def window_grads(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    g: np.ndarray,
    db: np.ndarray,
) -> None:
    """One pooled pixel's gradient routed to its window: ``g[k, f] = dout[f] * [p[f]
    > 0]`` (no mask without ``relu``) where entry ``k`` won channel ``f``, else 0;
    and ``db += dout * [p > 0]``. ``dout, p, argmax, db : (F,)``, ``g : (4, F)``."""
    g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
    for ch in range(dout.shape[0]):
        # Multiplies by 0/1 masks vectorise; selects compiled to scalar code.
        gv = dout[ch] * (p[ch] > 0) if relu else dout[ch]
        db[ch] += gv
        k = argmax[ch]
        g0[ch] = gv * (k == 0)
        g1[ch] = gv * (k == 1)
        g2[ch] = gv * (k == 2)
        g3[ch] = gv * (k == 3)


@serial_kernel
def pool_bias_relu(
    z: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``out = maxpool2x2(z) + b``, then ``max(out, 0)`` if ``relu``; and the winners.

    Parameters
    ----------
    z : (N, ho, wo, F) C-contiguous conv output before bias.
    b : (F,) bias (zeros for none).
    relu : apply the ReLU after the bias.
    out : (N, ho // 2, wo // 2, F) buffer, fully overwritten.
    argmax : (N, ho // 2, wo // 2, F) uint8 buffer, fully overwritten with
        ``2a + c`` for the winner ``z[n, 2p + a, 2q + c]``.

    Returns
    -------
    (out, argmax)
    """
    for bi in range(z.shape[0]):
        pool_rows(z[bi], b, relu, out[bi], argmax[bi])
    return out, argmax


@serial_kernel
def unpool_relu(
    dout: np.ndarray, p: np.ndarray, argmax: np.ndarray, relu: bool, dz: np.ndarray
) -> np.ndarray:
    """Gradient of :func:`pool_bias_relu` with respect to ``z`` (and so to the bias).

    Parameters
    ----------
    dout : (N, P, Q, F) upstream gradient of the pooled output.
    p, argmax : (N, P, Q, F) the pooled output and winners of the forward pass.
    relu : whether the forward pass applied the ReLU.
    dz : (N, ho, wo, F) C-contiguous buffer with ``ho // 2 == P`` and ``wo // 2 ==
        Q``, fully overwritten: ``dout * [p > 0]`` at each winner, 0 elsewhere.

    Returns
    -------
    dz
    """
    n, ho, wo, f = dz.shape
    po, qo = dout.shape[1], dout.shape[2]
    for bi in range(n):
        # A last odd row or column was dropped by the pool: no gradient there.
        dz[bi, 2 * po :] = 0
        dz[bi, : 2 * po, 2 * qo :] = 0
        for i in range(po):
            for j in range(qo):
                d, pv, a = dout[bi, i, j], p[bi, i, j], argmax[bi, i, j]
                d0, d1 = dz[bi, 2 * i, 2 * j], dz[bi, 2 * i, 2 * j + 1]
                d2, d3 = dz[bi, 2 * i + 1, 2 * j], dz[bi, 2 * i + 1, 2 * j + 1]
                # Multiplies by 0/1 masks vectorise; selects compiled to scalar code.
                for ch in range(f):
                    g = d[ch] * (pv[ch] > 0) if relu else d[ch]
                    k = a[ch]
                    d0[ch] = g * (k == 0)
                    d1[ch] = g * (k == 1)
                    d2[ch] = g * (k == 2)
                    d3[ch] = g * (k == 3)
    return dz


#: Below this many filters, :func:`pooled_weight_grad` adds each channel's winning
#: im2col row alone (a contiguous run of K taps, skipped where the ReLU is off)
#: rather than four masked rows across the channels, a loop too short to vectorise
#: when F is small. 128 images, 1 thread, median of 30: the speedrun net's first
#: layer (5x5, 8 filters, 24x24) 1.9 against 3.5 ms; the classic convnet's (3x3, 32
#: filters, 26x26) 5.3 against 1.7 ms, so the four-row form stays for wide layers.
FEW_FILTERS = 16


@numba.njit(inline="always")
def _winner_rows_weight_grad(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    cols: np.ndarray,
    ho: int,
    wo: int,
    dw: np.ndarray,
    db: np.ndarray,
) -> None:
    """:func:`pooled_weight_grad` channel by channel: ``dw[:, f] += g * cols[r]``
    for the row ``r`` of the conv pixel that won channel ``f`` of each window."""
    n, po, qo, f = dout.shape
    k = cols.shape[1]
    dw_t = np.zeros((f, k), dtype=dw.dtype)  # each channel's taps contiguous
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                d, pv, a = dout[bi, i, j], p[bi, i, j], argmax[bi, i, j]
                corner = (bi * ho + 2 * i) * wo + 2 * j
                for ch in range(f):
                    if relu and not pv[ch] > 0:
                        continue
                    g = d[ch]
                    db[ch] += g
                    row = cols[corner + (a[ch] >> 1) * wo + (a[ch] & 1)]
                    acc = dw_t[ch]
                    for t in range(k):
                        acc[t] += g * row[t]
    for t in range(k):
        for ch in range(f):
            dw[t, ch] += dw_t[ch, t]


@serial_kernel
def pooled_weight_grad(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    cols: np.ndarray,
    ho: int,
    wo: int,
    dw: np.ndarray,
    db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Add the weight and bias gradients of a fused conv + pool to ``dw`` and ``db``,
    straight from the pooled gradient: ``dz`` (see :func:`unpool_relu`) is never
    written.

    ``dw[t, f] += sum over conv pixels r of cols[r, t] * dz[r, f]`` and ``db[f] +=
    sum of dz[r, f]``, visiting each pooled pixel's four conv pixels with the
    gradient masked to the channels each one won (with fewer than
    :data:`FEW_FILTERS` channels, each channel's winner alone).

    Parameters
    ----------
    dout, p, argmax : (N, P, Q, F) as for :func:`unpool_relu`; relu likewise.
    cols : (N*ho*wo, K) the im2col rows of the same N images.
    ho, wo : the conv output size, ``ho // 2 == P``, ``wo // 2 == Q``.
    dw : (K, F) and db : (F,) accumulators, added to.

    Returns
    -------
    (dw, db)
    """
    n, po, qo, f = dout.shape
    k = cols.shape[1]
    if f < FEW_FILTERS:
        _winner_rows_weight_grad(dout, p, argmax, relu, cols, ho, wo, dw, db)
        return dw, db
    g = np.empty((4, f), dtype=dw.dtype)
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                window_grads(dout[bi, i, j], p[bi, i, j], argmax[bi, i, j], relu, g, db)
                g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
                r0 = (bi * ho + 2 * i) * wo + 2 * j
                c0, c1, c2, c3 = (
                    cols[r0],
                    cols[r0 + 1],
                    cols[r0 + wo],
                    cols[r0 + wo + 1],
                )
                # One pass over dw per kernel tap for the four conv pixels: the row of
                # dw is loaded and stored once per four multiply-adds.
                for t in range(k):
                    v0, v1, v2, v3 = c0[t], c1[t], c2[t], c3[t]
                    row = dw[t]
                    for ch in range(f):
                        row[ch] += v0 * g0[ch] + v1 * g1[ch] + v2 * g2[ch] + v3 * g3[ch]
    return dw, db
