"""Winograd F(4x4, 3x3) for a stride-1 3x3 convolution, every output kept (training
and inference) or 2x2-max-pooled in the output transform (inference): the kernels
of :data:`F4X4`, which the drivers of :mod:`tinynet.kernels.winograd_conv` run.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), with the
interpolation points 0, 1, -1, 2, -2 and infinity. A 4x4 block of outputs of a 3x3
correlation needs a 6x6 block ``d`` of input; with

    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,    0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6, -1/6],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6, -1/6],
           [0, -2, -1,  2, 1, 0],           [1/24,  1/12,  1/6],
           [0,  2, -1, -2, 1, 0],           [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]           [   0,     0,    1]]

    A^T = [[1, 1,  1, 1,  1, 0],
           [0, 1, -1, 2, -2, 0],
           [0, 1,  1, 4,  4, 0],
           [0, 1, -1, 8, -8, 1]]

it is ``Y = A^T [(G g G^T) * (B^T d B)] A``: 36 multiplications per 16 outputs,
2.25 per output against 4 for F(2x2, 3x3) and 9 for the direct convolution. The
transformed input ``V`` has 36 planes per 16 outputs instead of 16 per 4, so it is
also 44% less data to write, multiply and read back.

Tiles of an output whose size 4 does not divide are partial: the input past ``x``
reads as zeros and the outputs past ``y`` are dropped (their gradient is zero). On
the shipped CNN's 10x10 output that wastes 44% of the work, and F(2x2, 3x3) was as
fast there (``tinynet.plan.ConvBNReLU.winograd_algorithm``).

Float32 rounding: ``B^T`` and ``A^T`` weigh terms by up to 5 and 8 per axis, and
``G`` holds inexact sixths; on 64 channels in and out the output and gradients
differ from the exact convolution by ~4e-6 of their largest magnitude, against
~3e-7 by F(2x2, 3x3) and ~2e-7 by a direct float32 convolution
(``tests/test_kernels.py`` checks < 2e-5).
Layout: as in :mod:`tinynet.kernels.winograd`, 36 contiguous (tiles, C) planes;
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
        [1 / 4, 0.0, 0.0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0.0, 0.0, 1.0],
    ]
)
GG = np.kron(G, G)  # U = GG @ w, w as (9, C F): the kernel transform


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """w : (3, 3, C, F) -> U : (36, C, F), ``U[6a + b] = (G w G^T)[a, b]``."""
    return kernel_transform_by(GG, w)


def kernel_transform_adjoint(du: np.ndarray) -> np.ndarray:
    """dU : (36, C, F) -> dw : (3, 3, C, F), ``dw = G^T dU G``."""
    return kernel_transform_adjoint_by(GG, du)


SixValues = tuple[float, float, float, float, float, float]


# The 1-D steps, each inlined into a loop over channels (which stays vectorised).
# Their constants take the type of the data (``type(d0)(4)``): a bare ``4 * d``
# is a float64 product in Numba for float32 ``d`` (NumPy's promotion of int64 with
# float32), with conversions in every inner loop.
@numba.njit(inline="always")
def b_transpose(
    d0: float, d1: float, d2: float, d3: float, d4: float, d5: float
) -> SixValues:
    """``B^T d`` of six inputs."""
    two, four, five = type(d0)(2), type(d0)(4), type(d0)(5)
    a = d4 - four * d2
    b = d3 - four * d1
    c = d4 - d2
    e = two * (d3 - d1)
    return (
        four * d0 - five * d2 + d4,
        a + b,
        a - b,
        c + e,
        c - e,
        four * d1 - five * d3 + d5,
    )


@numba.njit(inline="always")
def b_times(
    v0: float, v1: float, v2: float, v3: float, v4: float, v5: float
) -> SixValues:
    """``B v`` of six values: the adjoint of :func:`b_transpose`."""
    two, four, five = type(v0)(2), type(v0)(4), type(v0)(5)
    s = v1 + v2
    t = v3 + v4
    u = four * (v2 - v1) + two * (v4 - v3)
    return (
        four * v0,
        u + four * v5,
        -five * v0 - four * s - t,
        (v1 - v2) + two * (v3 - v4) - five * v5,
        v0 + s + t,
        v5,
    )


@numba.njit(inline="always")
def a_transpose(
    m0: float, m1: float, m2: float, m3: float, m4: float, m5: float
) -> tuple[float, float, float, float]:
    """``A^T m`` of six products: four outputs."""
    two, four, eight = type(m0)(2), type(m0)(4), type(m0)(8)
    s = m1 + m2
    d = m1 - m2
    t = m3 + m4
    e = m3 - m4
    return m0 + s + t, d + two * e, s + four * t, d + eight * e + m5


@numba.njit(inline="always")
def a_times(y0: float, y1: float, y2: float, y3: float) -> SixValues:
    """``A y`` of four gradients: six, the adjoint of :func:`a_transpose`."""
    two, four, eight = type(y0)(2), type(y0)(4), type(y0)(8)
    s = y0 + y2
    d = y1 + y3
    t = y0 + four * y2
    e = two * y1 + eight * y3
    return y0, s + d, s - d, t + e, t - e, y3


@transform_kernel
def input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every 6x6 input tile.

    Parameters
    ----------
    x : (N, H, W, C) input; tile ``(p, q)`` reads rows ``4p - pt + [0, 6)`` and
        columns ``4q - pl + [0, 6)`` (zeros outside ``x``).
    tiles_h, tiles_w : tiles per image in each direction.
    v : (36, N * tiles_h * tiles_w, C) buffer, fully overwritten.

    Returns
    -------
    v
    """
    n, h, w, c = x.shape
    # As in the F(2x2) kernel: the tiles of a row overlap by two columns, so the
    # row combination ``t = B^T d`` runs once per column of the strip of six input
    # rows, then each tile combines six columns of t. The row combination runs
    # over whole rows (W * C values a loop, as in winograd63); the columns of t
    # outside x stay zero.
    cols = 4 * tiles_w + 2
    inside = min(w, cols - pl)  # columns of x in the strip
    t = np.zeros((6, cols, c), dtype=v.dtype)
    tf = t.reshape(6, cols * c)
    xf = np.ascontiguousarray(x).reshape(n, h, w * c)
    zero = np.zeros(w * c, dtype=x.dtype)
    lo, hi = pl * c, (pl + inside) * c
    t0, t1, t2 = tf[0, lo:hi], tf[1, lo:hi], tf[2, lo:hi]
    t3, t4, t5 = tf[3, lo:hi], tf[4, lo:hi], tf[5, lo:hi]
    for b in range(n):
        for p in range(tiles_h):
            y0 = 4 * p - pt
            d0 = xf[b, y0] if 0 <= y0 < h else zero
            d1 = xf[b, y0 + 1] if 0 <= y0 + 1 < h else zero
            d2 = xf[b, y0 + 2] if 0 <= y0 + 2 < h else zero
            d3 = xf[b, y0 + 3] if 0 <= y0 + 3 < h else zero
            d4 = xf[b, y0 + 4] if 0 <= y0 + 4 < h else zero
            d5 = xf[b, y0 + 5] if 0 <= y0 + 5 < h else zero
            for k in range(hi - lo):
                t0[k], t1[k], t2[k], t3[k], t4[k], t5[k] = b_transpose(
                    d0[k], d1[k], d2[k], d3[k], d4[k], d5[k]
                )
            # Row by row of t, so that the six planes written advance tile by tile
            # (tile by tile, writing 36 planes per tile, this pass took 2.7x as
            # long: 4 images of 26x26x32, 90 against 33 us).
            r0 = (b * tiles_h + p) * tiles_w
            for i in range(6):
                for q in range(tiles_w):
                    r = r0 + q
                    k = 4 * q
                    e0, e1, e2 = t[i, k], t[i, k + 1], t[i, k + 2]
                    e3, e4, e5 = t[i, k + 3], t[i, k + 4], t[i, k + 5]
                    o0, o1, o2 = v[6 * i, r], v[6 * i + 1, r], v[6 * i + 2, r]
                    o3, o4, o5 = v[6 * i + 3, r], v[6 * i + 4, r], v[6 * i + 5, r]
                    for ch in range(c):
                        o0[ch], o1[ch], o2[ch], o3[ch], o4[ch], o5[ch] = b_transpose(
                            e0[ch], e1[ch], e2[ch], e3[ch], e4[ch], e5[ch]
                        )
    return v


# The output side works on a whole row of tiles at a time, as in winograd63 (which
# says why): a loop per tile of the 8x8x64 output's transform took 0.26 ms per 128
# images, 0.14 ms over whole rows of tiles (1 thread, in cache; its adjoint 0.22
# -> 0.14 ms).
@numba.njit(inline="always")
def row_of_tiles_a_transpose(mf: np.ndarray, base: int, s: np.ndarray) -> None:
    """``S = A^T M`` for a row of tiles: ``s[i, j]`` (row ``i`` of column ``j`` of
    every tile of the row, ``(Q * F,)``) from the planes ``mf`` (36, tiles * F),
    the row's tiles starting at column ``base``. ``s : (4, 6, Q * F)``."""
    width = s.shape[2]
    stop = base + width
    for j in range(6):
        m0, m1, m2 = mf[j, base:stop], mf[6 + j, base:stop], mf[12 + j, base:stop]
        m3, m4 = mf[18 + j, base:stop], mf[24 + j, base:stop]
        m5 = mf[30 + j, base:stop]
        s0, s1, s2, s3 = s[0, j], s[1, j], s[2, j], s[3, j]
        for k in range(width):
            s0[k], s1[k], s2[k], s3[k] = a_transpose(
                m0[k], m1[k], m2[k], m3[k], m4[k], m5[k]
            )


@numba.njit(inline="always")
def row_of_outputs(s: np.ndarray, i: int, rows: np.ndarray) -> None:
    """``Y = S A`` for row ``i`` of every tile of a row: ``rows[t]`` (``(Q * F,)``,
    tile after tile) is output column ``t`` of each tile. ``rows : (4, Q * F)``."""
    e0, e1, e2 = s[i, 0], s[i, 1], s[i, 2]
    e3, e4, e5 = s[i, 3], s[i, 4], s[i, 5]
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    for k in range(rows.shape[1]):
        r0[k], r1[k], r2[k], r3[k] = a_transpose(
            e0[k], e1[k], e2[k], e3[k], e4[k], e5[k]
        )


@transform_kernel
def output_transform(m: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, written to the tile's 4x4 block of ``y`` (the
    part of it inside ``y``).

    Parameters
    ----------
    m : (36, N * P * Q, F) the products ``M[xi]``, C-contiguous, tile ``(n, p,
        q)`` in column ``(n * P + p) * Q + q``, with ``P, Q = ceil(ho / 4),
        ceil(wo / 4)``.
    b : (F,) bias.
    y : (N, ho, wo, F) buffer, fully overwritten.

    Returns
    -------
    y
    """
    n, ho, wo, f = y.shape
    po, qo = -(-ho // 4), -(-wo // 4)
    width = qo * f
    mf = np.ascontiguousarray(m).reshape(m.shape[0], -1)
    s = np.empty((4, 6, width), dtype=y.dtype)
    rows = np.empty((4, width), dtype=y.dtype)
    for bi in range(n):
        for p in range(po):
            row_of_tiles_a_transpose(mf, (bi * po + p) * width, s)
            for i in range(min(4, ho - 4 * p)):
                row_of_outputs(s, i, rows)
                out = y[bi, 4 * p + i]
                for q in range(qo):
                    for t in range(min(4, wo - 4 * q)):
                        for ch in range(f):
                            out[4 * q + t, ch] = rows[t, q * f + ch] + b[ch]
    return y


@transform_kernel
def output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, then the 2x2 max-pool of its four windows, ``+ b``,
    ReLU (inference: no adjoint).

    Parameters
    ----------
    m : (36, N * P * Q, F) the products, C-contiguous; tile ``(n, p, q)`` holds the
        pooled outputs ``(2p + [0, 2), 2q + [0, 2))``, those inside ``out``: ``P, Q
        = ceil(PO / 2), ceil(QO / 2)``.
    b : (F,) bias; relu : apply the ReLU.
    out, argmax : (N, PO, QO, F) buffers, as for ``convpool.pool_bias_relu``.

    Returns
    -------
    (out, argmax)
    """
    n, po, qo, f = out.shape
    tp, tq = -(-po // 2), -(-qo // 2)
    width = tq * f
    mf = np.ascontiguousarray(m).reshape(m.shape[0], -1)
    s = np.empty((4, 6, width), dtype=out.dtype)  # S = A^T M, as output_transform
    rows = np.empty((4, width), dtype=out.dtype)
    y = np.empty((4, 4 * tq, f), dtype=out.dtype)  # the conv rows of a tile row
    for bi in range(n):
        for p in range(tp):
            row_of_tiles_a_transpose(mf, (bi * tp + p) * width, s)
            for i in range(4):
                row_of_outputs(s, i, rows)
                for q in range(tq):
                    for t in range(4):
                        for ch in range(f):
                            y[i, 4 * q + t, ch] = rows[t, q * f + ch]
            end = min(2 * p + 2, po)  # the pooled rows of this row of tiles
            pool_rows(y, b, relu, out[bi, 2 * p : end], argmax[bi, 2 * p : end])
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
    dm : (36, N * P * Q, F) C-contiguous buffer, fully overwritten.
    db : (F,) accumulator.

    Returns
    -------
    (dm, db)
    """
    n, ho, wo, f = dy.shape
    po, qo = -(-ho // 4), -(-wo // 4)
    width = qo * f
    dmf = dm.reshape(dm.shape[0], -1)
    # A row of tiles at a time, as output_transform, backwards: the gradient rows
    # gathered column by column of the tiles (zero past dy), S = dY A^T for each
    # row, then dM = A S, six planes at a time.
    g = np.empty((4, width), dtype=dm.dtype)
    s = np.empty((4, 6, width), dtype=dm.dtype)
    for bi in range(n):
        for p in range(po):
            base = (bi * po + p) * width
            for i in range(4):
                if 4 * p + i >= ho:
                    s[i] = 0
                    continue
                row = dy[bi, 4 * p + i]
                for q in range(qo):
                    for t in range(4):
                        if 4 * q + t < wo:
                            for ch in range(f):
                                g[t, q * f + ch] = row[4 * q + t, ch]
                        else:
                            g[t, q * f : (q + 1) * f] = 0
                g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
                e0, e1, e2 = s[i, 0], s[i, 1], s[i, 2]
                e3, e4, e5 = s[i, 3], s[i, 4], s[i, 5]
                for k in range(width):
                    e0[k], e1[k], e2[k], e3[k], e4[k], e5[k] = a_times(
                        g0[k], g1[k], g2[k], g3[k]
                    )
            stop = base + width
            for j in range(6):
                s0, s1, s2, s3 = s[0, j], s[1, j], s[2, j], s[3, j]
                o0, o1 = dmf[j, base:stop], dmf[6 + j, base:stop]
                o2, o3 = dmf[12 + j, base:stop], dmf[18 + j, base:stop]
                o4, o5 = dmf[24 + j, base:stop], dmf[30 + j, base:stop]
                for k in range(width):
                    o0[k], o1[k], o2[k], o3[k], o4[k], o5[k] = a_times(
                        s0[k], s1[k], s2[k], s3[k]
                    )
    # Row and column 1 of A are all ones, so dM[1, 1] (plane 7) is each tile's sum
    # of dY: db from one plane, not inside the loops above (which it made take
    # 1.8x as long, 24x24x32).
    tile_sums = dm[7]
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
    dv : (36, N * tiles_h * tiles_w, C) gradient of ``V``.
    pt, pl, tiles_h, tiles_w : as for :func:`input_transform`.
    dx : (N, H, W, C) C-contiguous buffer, fully overwritten.

    Returns
    -------
    dx
    """
    n, h, w, c = dx.shape
    # The forward's strip, backwards: each tile's column combination ``T = dV B^T``
    # is added into a strip of six rows (neighbouring tiles share two columns),
    # then the row combination ``B T`` runs once per column of the strip; both
    # over whole rows, as winograd63's (the column combination of a row of tiles
    # into ``u``, then placed in the strip; rows of the strip outside dx go to
    # rows of ``spare``).
    cols = 4 * tiles_w + 2
    inside = min(w, cols - pl)  # columns of dx in the strip
    width = tiles_w * c
    dvf = np.ascontiguousarray(dv).reshape(dv.shape[0], -1)
    dxf = dx.reshape(n, h, w * c)
    u = np.empty((6, width), dtype=dx.dtype)
    t = np.empty((6, cols * c), dtype=dx.dtype)
    spare = np.empty((6, w * c), dtype=dx.dtype)
    lo, hi = pl * c, (pl + inside) * c
    t0, t1, t2 = t[0, lo:hi], t[1, lo:hi], t[2, lo:hi]
    t3, t4, t5 = t[3, lo:hi], t[4, lo:hi], t[5, lo:hi]
    u0, u1, u2, u3, u4, u5 = u[0], u[1], u[2], u[3], u[4], u[5]
    for b in range(n):
        dx[b] = 0
        for p in range(tiles_h):
            base = (b * tiles_h + p) * width
            stop = base + width
            for i in range(6):
                o = 6 * i
                v0, v1 = dvf[o, base:stop], dvf[o + 1, base:stop]
                v2, v3 = dvf[o + 2, base:stop], dvf[o + 3, base:stop]
                v4, v5 = dvf[o + 4, base:stop], dvf[o + 5, base:stop]
                for k in range(width):
                    u0[k], u1[k], u2[k], u3[k], u4[k], u5[k] = b_times(
                        v0[k], v1[k], v2[k], v3[k], v4[k], v5[k]
                    )
                ti = t[i]
                ti[: 2 * c] = 0
                for q in range(tiles_w):
                    at, src = 4 * q * c, q * c
                    h0, h1 = ti[at : at + c], ti[at + c : at + 2 * c]
                    a0, a1 = u0[src : src + c], u1[src : src + c]
                    for ch in range(c):
                        h0[ch] += a0[ch]
                        h1[ch] += a1[ch]
                    for j in range(2, 6):
                        dst = ti[at + j * c : at + (j + 1) * c]
                        got = u[j, src : src + c]
                        for ch in range(c):
                            dst[ch] = got[ch]
            y0 = 4 * p - pt
            g0 = dxf[b, y0] if 0 <= y0 < h else spare[0]
            g1 = dxf[b, y0 + 1] if 0 <= y0 + 1 < h else spare[1]
            g2 = dxf[b, y0 + 2] if 0 <= y0 + 2 < h else spare[2]
            g3 = dxf[b, y0 + 3] if 0 <= y0 + 3 < h else spare[3]
            g4 = dxf[b, y0 + 4] if 0 <= y0 + 4 < h else spare[4]
            g5 = dxf[b, y0 + 5] if 0 <= y0 + 5 < h else spare[5]
            for k in range(hi - lo):
                d0, d1, d2, d3, d4, d5 = b_times(
                    t0[k], t1[k], t2[k], t3[k], t4[k], t5[k]
                )
                g0[k] += d0
                g1[k] += d1
                g2[k] += d2
                g3[k] += d3
                g4[k] += d4
                g5[k] += d5
    return dx


#: F(4x4, 3x3), the kernels of this module.
F4X4 = Algorithm(
    "F(4x4, 3x3)",
    4,
    kernel_transform,
    kernel_transform_adjoint,
    input_transform,
    input_transform_adjoint,
    output_transform,
    output_transform_adjoint,
    output_transform_pool,
)

__all__ = [
    "F4X4",
    "G",
    "input_transform",
    "input_transform_adjoint",
    "kernel_transform",
    "kernel_transform_adjoint",
    "output_transform",
    "output_transform_adjoint",
    "output_transform_pool",
]
