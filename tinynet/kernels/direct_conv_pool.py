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
Each pass over a row takes four filters and three taps: every vector of the image
loaded feeds four sums, the 12 weights stay in registers, and the loop does 12
multiply-adds per 7 loads and 4 stores (one filter at a time did 4 per 5 and 1,
and its time went to the loads). The pool then takes the 2x2 window at *every*
pixel of a filter's rows, branch-free, a vector wide, and keeps the windows'
corners (the bias and ReLU after the max, as in :mod:`tinynet.kernels.convpool`,
whose rules for ties and odd sizes hold here too).

Backward rebuilds the masked conv gradient ``dz`` (the pooled gradient at each
window's winner, 0 elsewhere, garbage columns 0) and takes ``dw[f, t]`` as a dot
product of ``dz[f]`` with the same shifted rows, four filters and three taps a
pass; the input gradient, when asked for, scatters each winner's gradient through
the kernel.

Measured at batch 128, one thread, CPU time, against the im2col path of
:mod:`tinynet.kernels.conv` (``conv2d_forward`` / ``conv2d_backward`` with the pool
fused): the speedrun's 5x5, 8-filter layer, forward 1.7 against 2.9 ms, weight
gradient 1.75 against 1.9 ms. With 32 filters (the classic convnet's 3x3 first
layer) im2col wins (forward 3.0 against 4.0 ms), so the plan uses this path below
:data:`MAX_FILTERS` filters only. The blocked passes and the branch-free pool then
took the speedrun layer's kernels (AMD EPYC VM, AVX-512, 2026-12-03, wall time,
best of 300 alternated calls, load ~3 on 2 cores) from 1.30 to 0.75 ms forward
and 1.38 to 0.77 ms for the weight gradient; the speedrun net's whole training
step, 1 thread, CPU time, median of 80 alternated steps
(``benchmarks/interleaved_steps.py``, load ~6), from 12.6 to 10.0 ms. Compiled
for AVX2 only (``NUMBA_CPU_NAME=haswell``, 16 vector registers: some weights are
then reloaded) the kernels still went from 0.97 to 0.80 ms and 2.07 to 1.58 ms.
With 32 filters (3x3, 28x28) the blocked kernels tie with im2col forward (2.0 ms)
and lose backward (2.2 against 1.5 ms): :data:`MAX_FILTERS` stays.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from . import batch_split, serial_kernel

#: The direct path is taken for fewer filters than this (module docstring).
MAX_FILTERS = 16

#: Filters per pass over an image's rows (:func:`_four_filter_rows`): each row of
#: the image loaded feeds that many filters' sums, and their 12 weights (3 taps
#: each) stay in vector registers.
FILTER_BLOCK = 4


@numba.njit(inline="always")
def _tap_offsets(kh: int, kw: int, width: int) -> np.ndarray:
    """Offset of each tap ``t = i * kw + j`` in a flattened image: ``i * W + j``."""
    offsets = np.empty(kh * kw, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            offsets[i * kw + j] = i * width + j
    return offsets


@numba.njit(inline="always")
def _filters_padded(w: np.ndarray) -> np.ndarray:
    """``w : (kh, kw, 1, F)`` as (F', K) rows, a filter's taps together, with zero
    filters up to a multiple of :data:`FILTER_BLOCK`."""
    kh, kw, _, f = w.shape
    k = kh * kw
    rows = -(-f // FILTER_BLOCK) * FILTER_BLOCK
    w_t = np.zeros((rows, k), dtype=w.dtype)
    w_t[:f] = w.reshape(k, f).T
    return w_t


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _four_filter_rows(
    image: np.ndarray, offsets: np.ndarray, w_t: np.ndarray, f0: int, z: np.ndarray
) -> None:
    """``z[f, m] = sum over taps t of w_t[f, t] * image[offsets[t] + m]`` for the
    four filters ``f0 <= f < f0 + 4``, ``z : (F', L)``."""
    length, k = z.shape[1], offsets.shape[0]
    za, zb, zc, zd = z[f0], z[f0 + 1], z[f0 + 2], z[f0 + 3]
    wa, wb, wc, wd = w_t[f0], w_t[f0 + 1], w_t[f0 + 2], w_t[f0 + 3]
    z[f0 : f0 + 4] = 0
    t = 0
    while t + 3 <= k:
        a0, a1, a2 = wa[t], wa[t + 1], wa[t + 2]
        b0, b1, b2 = wb[t], wb[t + 1], wb[t + 2]
        c0, c1, c2 = wc[t], wc[t + 1], wc[t + 2]
        d0, d1, d2 = wd[t], wd[t + 1], wd[t + 2]
        x0 = image[offsets[t] : offsets[t] + length]
        x1 = image[offsets[t + 1] : offsets[t + 1] + length]
        x2 = image[offsets[t + 2] : offsets[t + 2] + length]
        for m in range(length):
            v0, v1, v2 = x0[m], x1[m], x2[m]
            za[m] += a0 * v0 + a1 * v1 + a2 * v2
            zb[m] += b0 * v0 + b1 * v1 + b2 * v2
            zc[m] += c0 * v0 + c1 * v1 + c2 * v2
            zd[m] += d0 * v0 + d1 * v1 + d2 * v2
        t += 3
    for rest in range(t, k):
        a0, b0, c0, d0 = wa[rest], wb[rest], wc[rest], wd[rest]
        x0 = image[offsets[rest] : offsets[rest] + length]
        for m in range(length):
            v0 = x0[m]
            za[m] += a0 * v0
            zb[m] += b0 * v0
            zc[m] += c0 * v0
            zd[m] += d0 * v0


@numba.njit(inline="always")
def _pool_every_corner(
    z: np.ndarray,
    width: int,
    b: float,
    relu: bool,
    pooled: np.ndarray,
    winners: np.ndarray,
) -> None:
    """The 2x2 window at every pixel ``m`` of one filter's full-width rows ``z``,
    as :func:`tinynet.kernels.convpool.window_max` pools it: ``pooled[m]`` (bias,
    then the ReLU) and ``winners[m]``. Written without branches, so it runs a
    vector wide (the pool needs one corner in four; picking those out first
    would make the loop a gather)."""
    c = pooled.shape[0]
    # Four views rather than z[m + width]: with that index LLVM left the loop
    # scalar (6x slower).
    z0, z1 = z[:c], z[1 : c + 1]
    z2, z3 = z[width : width + c], z[width + 1 : width + 1 + c]
    for m in range(c):
        z00, z01, z10, z11 = z0[m], z1[m], z2[m], z3[m]
        # The first maximum in row-major order: the top row's, unless the bottom
        # row's is strictly larger; within a row, the right one if strictly larger.
        top, bottom = max(z00, z01), max(z10, z11)
        lower = bottom > top
        v = max(top, bottom) + b
        pooled[m] = max(v, v - v) if relu else v
        right = (z11 > z10) if lower else (z01 > z00)
        winners[m] = 2 * lower + right


@numba.njit(
    cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"}
)
def _four_filter_dots(
    dz: np.ndarray, image: np.ndarray, offsets: np.ndarray, f0: int, sums: np.ndarray
) -> None:
    """``sums[f, t] += dot(dz[f], image[offsets[t]:offsets[t] + L])`` for the four
    filters ``f0 <= f < f0 + 4``, ``dz : (F', L)``. Reassociated, so the sums
    vectorise (their order then depends on the CPU's vector width, never on the
    thread count)."""
    length, k = dz.shape[1], offsets.shape[0]
    da, db, dc, dd = dz[f0], dz[f0 + 1], dz[f0 + 2], dz[f0 + 3]
    zero = da[0] - da[0]  # a zero of the gradient's own type
    t = 0
    while t + 3 <= k:
        x0 = image[offsets[t] : offsets[t] + length]
        x1 = image[offsets[t + 1] : offsets[t + 1] + length]
        x2 = image[offsets[t + 2] : offsets[t + 2] + length]
        a0 = a1 = a2 = b0 = b1 = b2 = c0 = c1 = c2 = d0 = d1 = d2 = zero
        for m in range(length):
            v0, v1, v2 = x0[m], x1[m], x2[m]
            ga, gb, gc, gd = da[m], db[m], dc[m], dd[m]
            a0 += ga * v0
            a1 += ga * v1
            a2 += ga * v2
            b0 += gb * v0
            b1 += gb * v1
            b2 += gb * v2
            c0 += gc * v0
            c1 += gc * v1
            c2 += gc * v2
            d0 += gd * v0
            d1 += gd * v1
            d2 += gd * v2
        sums[f0, t], sums[f0, t + 1], sums[f0, t + 2] = a0, a1, a2
        sums[f0 + 1, t], sums[f0 + 1, t + 1], sums[f0 + 1, t + 2] = b0, b1, b2
        sums[f0 + 2, t], sums[f0 + 2, t + 1], sums[f0 + 2, t + 2] = c0, c1, c2
        sums[f0 + 3, t], sums[f0 + 3, t + 1], sums[f0 + 3, t + 2] = d0, d1, d2
        t += 3
    for rest in range(t, k):
        x0 = image[offsets[rest] : offsets[rest] + length]
        a0 = b0 = c0 = d0 = zero
        for m in range(length):
            v0 = x0[m]
            a0 += da[m] * v0
            b0 += db[m] * v0
            c0 += dc[m] * v0
            d0 += dd[m] * v0
        sums[f0, rest], sums[f0 + 1, rest] = a0, b0
        sums[f0 + 2, rest], sums[f0 + 3, rest] = c0, d0


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
    # bottom-right entry; and the windows' top-left corners, up to the last one's.
    length = (2 * po - 1) * width + 2 * qo
    corners = length - width - 1
    offsets = _tap_offsets(kh, kw, width)
    w_t = _filters_padded(w)
    z = np.empty((w_t.shape[0], length), dtype=out.dtype)
    pooled = np.empty((f, corners), dtype=out.dtype)
    winners = np.empty((f, corners), dtype=np.uint8)
    images = x.reshape(n, -1)
    for bi in range(n):
        for f0 in range(0, w_t.shape[0], FILTER_BLOCK):
            _four_filter_rows(images[bi], offsets, w_t, f0, z)
        o, a = out[bi], argmax[bi]
        for fi in range(f):
            pf, af = pooled[fi], winners[fi]
            _pool_every_corner(z[fi], width, b[fi], relu, pf, af)
            for p in range(po):
                for q in range(qo):
                    corner = 2 * p * width + 2 * q
                    o[p, q, fi] = pf[corner]
                    a[p, q, fi] = af[corner]
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
    k = kh * kw
    length = (2 * po - 1) * width + 2 * qo  # as in conv_pool_forward
    offsets = _tap_offsets(kh, kw, width)
    rows = -(-f // FILTER_BLOCK) * FILTER_BLOCK
    # Entries off the windows, and the padding filters' rows, stay 0.
    dz = np.zeros((rows, length), dtype=dw_t.dtype)
    image_sums = np.empty((rows, k), dtype=dw_t.dtype)
    images = x.reshape(n, -1)
    sums = dw_t.reshape(f, k)
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                r = 2 * i * width + 2 * j
                d, pv, a = dout[bi, i, j], p[bi, i, j], argmax[bi, i, j]
                for fi in range(f):
                    g = d[fi] * (pv[fi] > 0) if relu else d[fi]
                    db[fi] += g
                    win, dzf = a[fi], dz[fi]
                    dzf[r] = g * (win == 0)
                    dzf[r + 1] = g * (win == 1)
                    dzf[r + width] = g * (win == 2)
                    dzf[r + width + 1] = g * (win == 3)
        for f0 in range(0, rows, FILTER_BLOCK):
            _four_filter_dots(dz, images[bi], offsets, f0, image_sums)
        sums += image_sums[:f]
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
