"""Winograd F(6x6, 3x3) for a stride-1 3x3 convolution, every output kept (training
and inference) or 2x2-max-pooled in the output transform (inference): the kernels
of :data:`F6X6`, which the drivers of :mod:`tinynet.kernels.winograd_conv` run.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), with the
interpolation points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity. A 6x6 block of
outputs of a 3x3 correlation needs an 8x8 block ``d`` of input; with

    B^T = [[1,    0, -21/4,     0,  21/4,     0, -1, 0],
           [0,    1,     1, -17/4, -17/4,     1,  1, 0],
           [0,   -1,     1,  17/4, -17/4,    -1,  1, 0],
           [0,  1/2,   1/4,  -5/2,  -5/4,     2,  1, 0],
           [0, -1/2,   1/4,   5/2,  -5/4,    -2,  1, 0],
           [0,    2,     4,  -5/2,    -5,   1/2,  1, 0],
           [0,   -2,     4,   5/2,    -5,  -1/2,  1, 0],
           [0,   -1,     0,  21/4,     0, -21/4,  0, 1]]

    G = [[    1,      0,     0],     A^T = [[1, 1,  1,  1,   1,    1,     1, 0],
         [ -2/9,   -2/9,  -2/9],            [0, 1, -1,  2,  -2,  1/2,  -1/2, 0],
         [ -2/9,    2/9,  -2/9],            [0, 1,  1,  4,   4,  1/4,   1/4, 0],
         [ 1/90,   1/45,  2/45],            [0, 1, -1,  8,  -8,  1/8,  -1/8, 0],
         [ 1/90,  -1/45,  2/45],            [0, 1,  1, 16,  16, 1/16,  1/16, 0],
         [32/45,  16/45,  8/45],            [0, 1, -1, 32, -32, 1/32, -1/32, 1]]
         [32/45, -16/45,  8/45],
         [    0,      0,     1]]

it is ``Y = A^T [(G g G^T) * (B^T d B)] A``: 64 multiplications per 36 outputs,
1.78 per output against 2.25 for F(4x4, 3x3) and 4 for F(2x2, 3x3). The
transformed input ``V`` has 64 planes per 36 outputs (F(4x4): 36 per 16), 21%
less data to write, multiply and read back than F(4x4).

Tiles of an output whose size 6 does not divide are partial: the input past ``x``
reads as zeros and the outputs past ``y`` are dropped (their gradient is zero). On
the shipped CNN's 10x10 output (2x2 tiles computing 12x12) that is 2.56
multiplications per output, against 3.24 for F(4x4)'s partial tiles and 4 for
F(2x2, 3x3) (``tinynet.plan.ConvBNReLU.winograd_algorithm`` chooses).

Float32 rounding: ``B^T`` weighs terms by up to 21/4 per axis, ``A^T`` by up to 32,
and ``G`` holds inexact ninths and 45ths; yet with fused multiply-adds, on 64
channels in and out (10x10 input) the output and gradients differ from the exact
convolution by ~5e-6 of their largest magnitude, ~8e-6 on the 26x26x32 -> 32 one
(F(4x4, 3x3): ~4e-6, F(2x2, 3x3): ~3e-7, a direct float32 convolution ~2e-7;
``tests/test_kernels.py`` checks < 4e-5; ``tests/test_conv_bn_relu.py`` holds a
float32 training step to 3e-5 of the float64 layers).
Layout: as in :mod:`tinynet.kernels.winograd`, 64 contiguous (tiles, C) planes;
tile ``(n, p, q)`` is column ``(n * tiles_h + p) * tiles_w + q``.
"""

from __future__ import annotations

import numba
import numpy as np

from .convpool import pool_rows
from .winograd_algorithm import (
    Algorithm,
    kernel_transform_adjoint_by,
    kernel_transform_by,
    transform_kernel,
)

G = np.array(
    [
        [1.0, 0.0, 0.0],
        [-2 / 9, -2 / 9, -2 / 9],
        [-2 / 9, 2 / 9, -2 / 9],
        [1 / 90, 1 / 45, 2 / 45],
        [1 / 90, -1 / 45, 2 / 45],
        [32 / 45, 16 / 45, 8 / 45],
        [32 / 45, -16 / 45, 8 / 45],
        [0.0, 0.0, 1.0],
    ]
)
GG = np.kron(G, G)  # U = GG @ w, w as (9, C F): the kernel transform


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """w : (3, 3, C, F) -> U : (64, C, F), ``U[8a + b] = (G w G^T)[a, b]``."""
    return kernel_transform_by(GG, w)


def kernel_transform_adjoint(du: np.ndarray) -> np.ndarray:
    """dU : (64, C, F) -> dw : (3, 3, C, F), ``dw = G^T dU G``."""
    return kernel_transform_adjoint_by(GG, du)


SixValues = tuple[float, float, float, float, float, float]
EightValues = tuple[float, float, float, float, float, float, float, float]


# The 1-D steps, each inlined into a loop over channels (which stays vectorised),
# as in winograd43; the constants take the type of the data (winograd43 says why).
# All of them (1/4, 5/4, 17/4, 21/4, 1/2, 5/2, 1/8, ...) are exact in float32.
@numba.njit(inline="always")
def b_transpose(
    d0: float,
    d1: float,
    d2: float,
    d3: float,
    d4: float,
    d5: float,
    d6: float,
    d7: float,
) -> EightValues:
    """``B^T d`` of eight inputs."""
    k = type(d0)
    a = d2 + d6 - k(4.25) * d4
    b = d1 + d5 - k(4.25) * d3
    c = d6 + k(0.25) * d2 - k(1.25) * d4
    e = k(0.5) * d1 - k(2.5) * d3 + k(2) * d5
    g = d6 + k(4) * (d2 - k(1.25) * d4)
    h = k(2) * d1 - k(2.5) * d3 + k(0.5) * d5
    return (
        d0 - d6 + k(5.25) * (d4 - d2),
        a + b,
        a - b,
        c + e,
        c - e,
        g + h,
        g - h,
        d7 - d1 + k(5.25) * (d3 - d5),
    )


@numba.njit(inline="always")
def b_times(
    v0: float,
    v1: float,
    v2: float,
    v3: float,
    v4: float,
    v5: float,
    v6: float,
    v7: float,
) -> EightValues:
    """``B v`` of eight values: the adjoint of :func:`b_transpose`."""
    k = type(v0)
    p1, q1 = v1 + v2, v1 - v2
    p3, q3 = v3 + v4, v3 - v4
    p5, q5 = v5 + v6, v5 - v6
    return (
        v0,
        q1 + k(0.5) * q3 + k(2) * q5 - v7,
        p1 + k(0.25) * p3 + k(4) * p5 - k(5.25) * v0,
        k(5.25) * v7 - k(4.25) * q1 - k(2.5) * (q3 + q5),
        k(5.25) * v0 - k(4.25) * p1 - k(1.25) * p3 - k(5) * p5,
        q1 + k(2) * q3 + k(0.5) * q5 - k(5.25) * v7,
        p1 + p3 + p5 - v0,
        v7,
    )


@numba.njit(inline="always")
def a_transpose(
    m0: float,
    m1: float,
    m2: float,
    m3: float,
    m4: float,
    m5: float,
    m6: float,
    m7: float,
) -> SixValues:
    """``A^T m`` of eight products: six outputs."""
    k = type(m0)
    a, b = m1 + m2, m1 - m2
    c, d = m3 + m4, m3 - m4
    e, f = m5 + m6, m5 - m6
    return (
        m0 + a + c + e,
        b + k(2) * d + k(0.5) * f,
        a + k(4) * c + k(0.25) * e,
        b + k(8) * d + k(0.125) * f,
        a + k(16) * c + k(0.0625) * e,
        b + k(32) * d + k(0.03125) * f + m7,
    )


@numba.njit(inline="always")
def a_times(
    y0: float, y1: float, y2: float, y3: float, y4: float, y5: float
) -> EightValues:
    """``A y`` of six gradients: eight, the adjoint of :func:`a_transpose`."""
    k = type(y0)
    e1, o1 = y0 + y2 + y4, y1 + y3 + y5
    e2 = y0 + k(4) * y2 + k(16) * y4
    o2 = k(2) * y1 + k(8) * y3 + k(32) * y5
    e3 = y0 + k(0.25) * y2 + k(0.0625) * y4
    o3 = k(0.5) * y1 + k(0.125) * y3 + k(0.03125) * y5
    return y0, e1 + o1, e1 - o1, e2 + o2, e2 - o2, e3 + o3, e3 - o3, y5


@transform_kernel
def input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every 8x8 input tile.

    Parameters
    ----------
    x : (N, H, W, C) input; tile ``(p, q)`` reads rows ``6p - pt + [0, 8)`` and
        columns ``6q - pl + [0, 8)`` (zeros outside ``x``).
    tiles_h, tiles_w : tiles per image in each direction.
    v : (64, N * tiles_h * tiles_w, C) buffer, fully overwritten.

    Returns
    -------
    v
    """
    n, h, w, c = x.shape
    # As in winograd43: the row combination ``t = B^T d`` of the strip of eight
    # input rows, then each tile combines eight columns of t, row by row of t. The
    # row combination runs over whole rows (W * C values a loop: see "a row of
    # tiles at a time" below); the columns of t outside x stay zero.
    cols = 6 * tiles_w + 2
    inside = min(w, cols - pl)  # columns of x in the strip
    t = np.zeros((8, cols, c), dtype=v.dtype)
    tf = t.reshape(8, cols * c)
    xf = np.ascontiguousarray(x).reshape(n, h, w * c)
    zero = np.zeros(w * c, dtype=x.dtype)
    lo, hi = pl * c, (pl + inside) * c
    t0, t1, t2, t3 = tf[0, lo:hi], tf[1, lo:hi], tf[2, lo:hi], tf[3, lo:hi]
    t4, t5, t6, t7 = tf[4, lo:hi], tf[5, lo:hi], tf[6, lo:hi], tf[7, lo:hi]
    for b in range(n):
        for p in range(tiles_h):
            y0 = 6 * p - pt
            d0 = xf[b, y0] if 0 <= y0 < h else zero
            d1 = xf[b, y0 + 1] if 0 <= y0 + 1 < h else zero
            d2 = xf[b, y0 + 2] if 0 <= y0 + 2 < h else zero
            d3 = xf[b, y0 + 3] if 0 <= y0 + 3 < h else zero
            d4 = xf[b, y0 + 4] if 0 <= y0 + 4 < h else zero
            d5 = xf[b, y0 + 5] if 0 <= y0 + 5 < h else zero
            d6 = xf[b, y0 + 6] if 0 <= y0 + 6 < h else zero
            d7 = xf[b, y0 + 7] if 0 <= y0 + 7 < h else zero
            for k in range(hi - lo):
                (
                    t0[k], t1[k], t2[k], t3[k], t4[k], t5[k], t6[k], t7[k]
                ) = b_transpose(
                    d0[k], d1[k], d2[k], d3[k], d4[k], d5[k], d6[k], d7[k]
                )  # fmt: skip
            r0 = (b * tiles_h + p) * tiles_w
            for i in range(8):
                o = 8 * i
                for q in range(tiles_w):
                    r = r0 + q
                    k = 6 * q
                    e0, e1, e2, e3 = t[i, k], t[i, k + 1], t[i, k + 2], t[i, k + 3]
                    e4, e5, e6, e7 = t[i, k + 4], t[i, k + 5], t[i, k + 6], t[i, k + 7]
                    o0, o1, o2, o3 = v[o, r], v[o + 1, r], v[o + 2, r], v[o + 3, r]
                    o4, o5, o6, o7 = v[o + 4, r], v[o + 5, r], v[o + 6, r], v[o + 7, r]
                    for ch in range(c):
                        (
                            o0[ch], o1[ch], o2[ch], o3[ch],
                            o4[ch], o5[ch], o6[ch], o7[ch],
                        ) = b_transpose(
                            e0[ch], e1[ch], e2[ch], e3[ch],
                            e4[ch], e5[ch], e6[ch], e7[ch],
                        )  # fmt: skip
    return v


# The output side works on a whole row of tiles at a time: the planes of a row of
# tiles are (Q * F) contiguous values, and each channel loop runs over all of them
# at once. A loop per tile (F values; 2 vectors of 16 at F = 32) spent more on its
# set-up (eight input and six output arrays, checked for overlap) than on the sums:
# this output transform took 1.70 ms per 128 images of 24x24x32 that way, 0.56 ms
# so (1 thread; F(4x4)'s, per tile: 1.35 ms).
# Every inner loop indexes its arrays by the loop variable alone, through views
# (``h0 = t[at : at + c]``, then ``h0[ch]``): an index like ``t[at + ch]`` might be
# negative as far as Numba knows, which then wraps it, and such a loop compiled to
# scalar code (placing the tiles in the input-transform adjoint took 1.1 of its 1.9
# ms per 128 images of 26x26x32 so; 0.3 with views).
@numba.njit(inline="always")
def row_of_tiles_a_transpose(mf: np.ndarray, base: int, s: np.ndarray) -> None:
    """``S = A^T M`` for a row of tiles: ``s[i, j]`` (row ``i`` of column ``j`` of
    every tile of the row, ``(Q * F,)``) from the planes ``mf`` (64, tiles * F),
    the row's tiles starting at column ``base``. ``s : (6, 8, Q * F)``."""
    width = s.shape[2]
    stop = base + width
    for j in range(8):
        m0, m1 = mf[j, base:stop], mf[8 + j, base:stop]
        m2, m3 = mf[16 + j, base:stop], mf[24 + j, base:stop]
        m4, m5 = mf[32 + j, base:stop], mf[40 + j, base:stop]
        m6, m7 = mf[48 + j, base:stop], mf[56 + j, base:stop]
        s0, s1, s2 = s[0, j], s[1, j], s[2, j]
        s3, s4, s5 = s[3, j], s[4, j], s[5, j]
        for k in range(width):
            s0[k], s1[k], s2[k], s3[k], s4[k], s5[k] = a_transpose(
                m0[k], m1[k], m2[k], m3[k], m4[k], m5[k], m6[k], m7[k]
            )


@numba.njit(inline="always")
def row_of_outputs(s: np.ndarray, i: int, rows: np.ndarray) -> None:
    """``Y = S A`` for row ``i`` of every tile of a row: ``rows[t]`` (``(Q * F,)``,
    tile after tile) is output column ``t`` of each tile. ``rows : (6, Q * F)``."""
    e0, e1, e2, e3 = s[i, 0], s[i, 1], s[i, 2], s[i, 3]
    e4, e5, e6, e7 = s[i, 4], s[i, 5], s[i, 6], s[i, 7]
    r0, r1, r2 = rows[0], rows[1], rows[2]
    r3, r4, r5 = rows[3], rows[4], rows[5]
    for k in range(rows.shape[1]):
        r0[k], r1[k], r2[k], r3[k], r4[k], r5[k] = a_transpose(
            e0[k], e1[k], e2[k], e3[k], e4[k], e5[k], e6[k], e7[k]
        )


@transform_kernel
def output_transform(m: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, written to the tile's 6x6 block of ``y`` (the
    part of it inside ``y``).

    Parameters
    ----------
    m : (64, N * P * Q, F) the products ``M[xi]``, C-contiguous, tile ``(n, p,
        q)`` in column ``(n * P + p) * Q + q``, with ``P, Q = ceil(ho / 6),
        ceil(wo / 6)``.
    b : (F,) bias.
    y : (N, ho, wo, F) buffer, fully overwritten.

    Returns
    -------
    y
    """
    n, ho, wo, f = y.shape
    po, qo = -(-ho // 6), -(-wo // 6)
    width = qo * f
    mf = np.ascontiguousarray(m).reshape(m.shape[0], -1)
    s = np.empty((6, 8, width), dtype=y.dtype)
    rows = np.empty((6, width), dtype=y.dtype)
    for bi in range(n):
        for p in range(po):
            row_of_tiles_a_transpose(mf, (bi * po + p) * width, s)
            for i in range(min(6, ho - 6 * p)):
                row_of_outputs(s, i, rows)
                out = y[bi, 6 * p + i]
                for q in range(qo):
                    for t in range(min(6, wo - 6 * q)):
                        o, r = out[6 * q + t], rows[t, q * f : (q + 1) * f]
                        for ch in range(f):
                            o[ch] = r[ch] + b[ch]
    return y


@transform_kernel
def output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, then the 2x2 max-pool of its nine windows, ``+ b``,
    ReLU (inference: no adjoint).

    Parameters
    ----------
    m : (64, N * P * Q, F) the products, C-contiguous; tile ``(n, p, q)`` holds the
        pooled outputs ``(3p + [0, 3), 3q + [0, 3))``, those inside ``out``: ``P, Q
        = ceil(PO / 3), ceil(QO / 3)``.
    b : (F,) bias; relu : apply the ReLU.
    out, argmax : (N, PO, QO, F) buffers, as for ``convpool.pool_bias_relu``.

    Returns
    -------
    (out, argmax)
    """
    n, po, qo, f = out.shape
    tp, tq = -(-po // 3), -(-qo // 3)
    width = tq * f
    mf = np.ascontiguousarray(m).reshape(m.shape[0], -1)
    s = np.empty((6, 8, width), dtype=out.dtype)  # S = A^T M, as output_transform
    rows = np.empty((6, width), dtype=out.dtype)
    y = np.empty((6, 6 * tq, f), dtype=out.dtype)  # the conv rows of a tile row
    for bi in range(n):
        for p in range(tp):
            row_of_tiles_a_transpose(mf, (bi * tp + p) * width, s)
            for i in range(6):
                row_of_outputs(s, i, rows)
                for q in range(tq):
                    for t in range(6):
                        o, r = y[i, 6 * q + t], rows[t, q * f : (q + 1) * f]
                        for ch in range(f):
                            o[ch] = r[ch]
            end = min(3 * p + 3, po)  # the pooled rows of this row of tiles
            pool_rows(y, b, relu, out[bi, 3 * p : end], argmax[bi, 3 * p : end])
    return out, argmax


@transform_kernel
def output_transform_adjoint(
    dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Adjoint of :func:`output_transform`: ``dM = A dY A^T`` per tile (``dY`` zero
    past ``y``), and ``db += sum of dy``.

    Parameters
    ----------
    dy : (N, ho, wo, F) gradient of the output.
    dm : (64, N * P * Q, F) C-contiguous buffer, fully overwritten.
    db : (F,) accumulator.

    Returns
    -------
    (dm, db)
    """
    n, ho, wo, f = dy.shape
    po, qo = -(-ho // 6), -(-wo // 6)
    width = qo * f
    dmf = dm.reshape(dm.shape[0], -1)
    # A row of tiles at a time, as output_transform, backwards: the gradient rows
    # gathered column by column of the tiles (zero past dy), S = dY A^T for each
    # row, then dM = A S, eight planes at a time.
    g = np.empty((6, width), dtype=dm.dtype)
    s = np.empty((6, 8, width), dtype=dm.dtype)
    for bi in range(n):
        for p in range(po):
            base = (bi * po + p) * width
            for i in range(6):
                if 6 * p + i >= ho:
                    s[i] = 0
                    continue
                row = dy[bi, 6 * p + i]
                for q in range(qo):
                    for t in range(6):
                        gt = g[t, q * f : (q + 1) * f]
                        if 6 * q + t < wo:
                            r = row[6 * q + t]
                            for ch in range(f):
                                gt[ch] = r[ch]
                        else:
                            gt[:] = 0
                g0, g1, g2 = g[0], g[1], g[2]
                g3, g4, g5 = g[3], g[4], g[5]
                e0, e1, e2, e3 = s[i, 0], s[i, 1], s[i, 2], s[i, 3]
                e4, e5, e6, e7 = s[i, 4], s[i, 5], s[i, 6], s[i, 7]
                for k in range(width):
                    (
                        e0[k], e1[k], e2[k], e3[k], e4[k], e5[k], e6[k], e7[k]
                    ) = a_times(g0[k], g1[k], g2[k], g3[k], g4[k], g5[k])  # fmt: skip
            stop = base + width
            for j in range(8):
                s0, s1, s2 = s[0, j], s[1, j], s[2, j]
                s3, s4, s5 = s[3, j], s[4, j], s[5, j]
                o0, o1 = dmf[j, base:stop], dmf[8 + j, base:stop]
                o2, o3 = dmf[16 + j, base:stop], dmf[24 + j, base:stop]
                o4, o5 = dmf[32 + j, base:stop], dmf[40 + j, base:stop]
                o6, o7 = dmf[48 + j, base:stop], dmf[56 + j, base:stop]
                for k in range(width):
                    (
                        o0[k], o1[k], o2[k], o3[k], o4[k], o5[k], o6[k], o7[k]
                    ) = a_times(s0[k], s1[k], s2[k], s3[k], s4[k], s5[k])  # fmt: skip
    # Row and column 1 of A are all ones (the point 1), so dM[1, 1] (plane 9) is
    # each tile's sum of dY: db from one plane, as in winograd43.
    tile_sums = dm[9]
    for r in range(tile_sums.shape[0]):
        row_sum = tile_sums[r]
        for ch in range(f):
            db[ch] += row_sum[ch]
    return dm, db


@transform_kernel
def input_transform_adjoint(
    dv: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` where the tile lies in it.

    Parameters
    ----------
    dv : (64, N * tiles_h * tiles_w, C) gradient of ``V``.
    pt, pl, tiles_h, tiles_w : as for :func:`input_transform`.
    dx : (N, H, W, C) buffer, fully overwritten.

    Returns
    -------
    dx
    """
    n, h, w, c = dx.shape
    # As winograd43.input_transform_adjoint: each tile's column combination
    # ``T = dV B^T`` is added into a strip of eight rows (neighbouring tiles share
    # two columns), then the row combination ``B T`` runs once per column; both
    # over whole rows, as the output side (the column combination of a row of
    # tiles into ``u``, then placed in the strip). The rows of the strip outside
    # dx go to rows of ``spare`` (one each: overlapping outputs would keep the
    # loop from vectorising).
    cols = 6 * tiles_w + 2
    inside = min(w, cols - pl)  # columns of dx in the strip
    width = tiles_w * c
    dvf = np.ascontiguousarray(dv).reshape(dv.shape[0], -1)
    dxf = dx.reshape(n, h, w * c)
    u = np.empty((8, width), dtype=dx.dtype)
    t = np.empty((8, cols * c), dtype=dx.dtype)
    spare = np.empty((8, w * c), dtype=dx.dtype)
    lo, hi = pl * c, (pl + inside) * c
    t0, t1, t2, t3 = t[0, lo:hi], t[1, lo:hi], t[2, lo:hi], t[3, lo:hi]
    t4, t5, t6, t7 = t[4, lo:hi], t[5, lo:hi], t[6, lo:hi], t[7, lo:hi]
    u0, u1, u2, u3 = u[0], u[1], u[2], u[3]
    u4, u5, u6, u7 = u[4], u[5], u[6], u[7]
    for b in range(n):
        dx[b] = 0
        for p in range(tiles_h):
            base = (b * tiles_h + p) * width
            stop = base + width
            for i in range(8):
                o = 8 * i
                v0, v1 = dvf[o, base:stop], dvf[o + 1, base:stop]
                v2, v3 = dvf[o + 2, base:stop], dvf[o + 3, base:stop]
                v4, v5 = dvf[o + 4, base:stop], dvf[o + 5, base:stop]
                v6, v7 = dvf[o + 6, base:stop], dvf[o + 7, base:stop]
                for k in range(width):
                    (
                        u0[k], u1[k], u2[k], u3[k], u4[k], u5[k], u6[k], u7[k]
                    ) = b_times(
                        v0[k], v1[k], v2[k], v3[k], v4[k], v5[k], v6[k], v7[k]
                    )  # fmt: skip
                ti = t[i]
                ti[: 2 * c] = 0
                for q in range(tiles_w):
                    at, src = 6 * q * c, q * c
                    h0, h1 = ti[at : at + c], ti[at + c : at + 2 * c]
                    a0, a1 = u0[src : src + c], u1[src : src + c]
                    for ch in range(c):
                        h0[ch] += a0[ch]
                        h1[ch] += a1[ch]
                    for j in range(2, 8):
                        dst = ti[at + j * c : at + (j + 1) * c]
                        got = u[j, src : src + c]
                        for ch in range(c):
                            dst[ch] = got[ch]
            y0 = 6 * p - pt
            g0 = dxf[b, y0] if 0 <= y0 < h else spare[0]
            g1 = dxf[b, y0 + 1] if 0 <= y0 + 1 < h else spare[1]
            g2 = dxf[b, y0 + 2] if 0 <= y0 + 2 < h else spare[2]
            g3 = dxf[b, y0 + 3] if 0 <= y0 + 3 < h else spare[3]
            g4 = dxf[b, y0 + 4] if 0 <= y0 + 4 < h else spare[4]
            g5 = dxf[b, y0 + 5] if 0 <= y0 + 5 < h else spare[5]
            g6 = dxf[b, y0 + 6] if 0 <= y0 + 6 < h else spare[6]
            g7 = dxf[b, y0 + 7] if 0 <= y0 + 7 < h else spare[7]
            for k in range(hi - lo):
                d0, d1, d2, d3, d4, d5, d6, d7 = b_times(
                    t0[k], t1[k], t2[k], t3[k], t4[k], t5[k], t6[k], t7[k]
                )
                g0[k] += d0
                g1[k] += d1
                g2[k] += d2
                g3[k] += d3
                g4[k] += d4
                g5[k] += d5
                g6[k] += d6
                g7[k] += d7
    return dx


#: F(6x6, 3x3), the kernels of this module.
F6X6 = Algorithm(
    "F(6x6, 3x3)",
    6,
    kernel_transform,
    kernel_transform_adjoint,
    input_transform,
    input_transform_adjoint,
    output_transform,
    output_transform_adjoint,
    output_transform_pool,
)

__all__ = [
    "F6X6",
    "G",
    "input_transform",
    "input_transform_adjoint",
    "kernel_transform",
    "kernel_transform_adjoint",
    "output_transform",
    "output_transform_adjoint",
    "output_transform_pool",
]
