"""Winograd F(2x2, 3x3) for a stride-1 3x3 convolution followed by a 2x2 max-pool,
or, for the plan's ``ConvBNReLU`` steps, with every output kept: the kernels of
:data:`F2X2` (the transforms and their adjoints). The chunked drivers that run them,
and F(4x4, 3x3)'s and F(6x6, 3x3)'s (:mod:`tinynet.kernels.winograd43`,
:mod:`tinynet.kernels.winograd63`), are in
:mod:`tinynet.kernels.winograd_conv`; the :class:`Algorithm` record that carries an
algorithm's kernels to them is in :mod:`tinynet.kernels.winograd_algorithm`.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). A 2x2 block
of outputs of a 3x3 correlation needs a 4x4 block ``d`` of input; with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

it is ``Y = A^T [(G g G^T) * (B^T d B)] A`` (``*`` elementwise): 16 multiplications
instead of 36. Summed over input channels, each of the 16 positions ``xi`` of the
4x4 transformed tile is one matrix product over all tiles::

    V[xi] : (tiles, C) = transformed input      U[xi] = (G g G^T)[xi] : (C, F)
    M[xi] = V[xi] @ U[xi]                       y = A^T M A, tile by tile

Why here: with the 2x2 max-pool fused after the conv, a 2x2 output tile is exactly
one pool window, so only the tiles the pool keeps are computed (25 of 36 for the
11x11 output of the MNIST conv2), and the pool happens in the output transform.
Per image that is 16 * 25 * C * F multiply-adds against 121 * 9 * C * F for im2col
(2.7x fewer). Measured on conv2 at batch 128, 2 threads (``benchmarks/bench_conv.py``
and ``tinynet/plan/conv_pool.py`` have the whole picture): forward 3.0 ms against
3.6 ms for the fused im2col path, backward 4.6 against 6.7 ms. Every output kept
(``winograd_conv.conv3x3_forward``, even output sizes, 16 against 36 multiply-adds
per 2x2 tile), on the shipped CNN's second conv (26x26x32 -> 24x24x32, batch 128,
2 threads, alternated in one process, median of 10): forward 13.2 ms against 14.1
ms by im2col, backward (dx too) 15.1 against 30.6 ms.

Backward is the adjoint of the same steps (exact, as the forward is an identity in
exact arithmetic):

    dM = A dY A^T,   dU[xi] = V[xi]^T @ dM[xi],   dg = G^T dU G,
    dV[xi] = dM[xi] @ U[xi]^T,   dd = B dV B^T, added into dx tile by tile.

Float32 rounding: the transforms add at most 9 terms of the inputs' magnitude, so
results differ from a direct convolution by a few units in the 6th-7th digit.
Layout: the 16 planes ``V[xi]`` are contiguous (16, tiles, C) arrays; with the
tile-major layout the batched matmuls ran at half the speed.

The drivers at the end (``forward_chunks``, ``backward_chunks`` and the
``conv3x3_*`` entry points) run any :class:`Algorithm`: :data:`F2X2`, whose
kernels are here, ``winograd43.F4X4``, F(4x4, 3x3) (36 multiplications per 16
outputs), or ``winograd63.F6X6``, F(6x6, 3x3) (64 per 36); ``tinynet.plan.ConvBNReLU``
picks the one with the fewest multiplications per output.
"""

from __future__ import annotations

import numba
import numpy as np

from .convpool import window_grads, window_max
from .winograd_algorithm import (
    Algorithm,
    kernel_transform_adjoint_by,
    kernel_transform_by,
    transform_kernel,
)

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
GG = np.kron(G, G)  # U = GG @ w, w as (9, C F): the kernel transform


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """w : (3, 3, C, F) -> U : (16, C, F), ``U[4a + b] = (G w G^T)[a, b]``."""
    return kernel_transform_by(GG, w)


def kernel_transform_adjoint(du: np.ndarray) -> np.ndarray:
    """dU : (16, C, F) -> dw : (3, 3, C, F), ``dw = G^T dU G``."""
    return kernel_transform_adjoint_by(GG, du)


@transform_kernel
def input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every 4x4 input tile.

    Parameters
    ----------
    x : (N, H, W, C) input; tile ``(p, q)`` reads rows ``2p - pt + [0, 4)`` and
        columns ``2q - pl + [0, 4)`` (zeros outside ``x``).
    tiles_h, tiles_w : tiles per image in each direction.
    v : (16, N * tiles_h * tiles_w, C) buffer, fully overwritten; tile ``(n, p, q)``
        is column ``(n * tiles_h + p) * tiles_w + q``.

    Returns
    -------
    v
    """
    n, h, w, c = x.shape
    # The tiles of one row overlap by two columns, so the row combination ``t =
    # B^T d`` runs once per column of the strip of four input rows they read (not
    # once per tile: half the work), then each tile combines four columns of t.
    # The shipped CNN's second conv (26x26x32, chunks of 5 images, 1 thread): 4.6
    # -> 1.9 ms per batch of 128, about the time to write V once.
    cols = 2 * tiles_w + 2
    t = np.empty((4, cols, c), dtype=v.dtype)
    zero = np.zeros(c, dtype=x.dtype)
    for b in range(n):
        for p in range(tiles_h):
            y0 = 2 * p - pt
            for k in range(cols):
                ix = k - pl
                if ix < 0 or ix >= w:
                    t[:, k] = 0
                    continue
                d0 = x[b, y0, ix] if 0 <= y0 < h else zero
                d1 = x[b, y0 + 1, ix] if 0 <= y0 + 1 < h else zero
                d2 = x[b, y0 + 2, ix] if 0 <= y0 + 2 < h else zero
                d3 = x[b, y0 + 3, ix] if 0 <= y0 + 3 < h else zero
                t0, t1, t2, t3 = t[0, k], t[1, k], t[2, k], t[3, k]
                for ch in range(c):
                    t0[ch] = d0[ch] - d2[ch]
                    t1[ch] = d1[ch] + d2[ch]
                    t2[ch] = d2[ch] - d1[ch]
                    t3[ch] = d1[ch] - d3[ch]
            # Row by row of t, so that the four planes written advance tile by
            # tile (see winograd43.input_transform).
            r0 = (b * tiles_h + p) * tiles_w
            for i in range(4):
                for q in range(tiles_w):
                    r = r0 + q
                    e0, e1 = t[i, 2 * q], t[i, 2 * q + 1]
                    e2, e3 = t[i, 2 * q + 2], t[i, 2 * q + 3]
                    o0, o1 = v[4 * i, r], v[4 * i + 1, r]
                    o2, o3 = v[4 * i + 2, r], v[4 * i + 3, r]
                    for ch in range(c):
                        o0[ch] = e0[ch] - e2[ch]
                        o1[ch] = e1[ch] + e2[ch]
                        o2[ch] = e2[ch] - e1[ch]
                        o3[ch] = e1[ch] - e3[ch]
    return v


@numba.njit(inline="always")
def tile_outputs(m: np.ndarray, r: int, ch: int) -> tuple[float, float, float, float]:
    """``Y = A^T M A`` of tile ``r`` in channel ``ch``: its outputs ``(y00, y01,
    y10, y11)``. Inlined into channel loops, which stay vectorised."""
    # S = A^T M (combine rows), then Y = S A (combine columns).
    s00 = m[0, r, ch] + m[4, r, ch] + m[8, r, ch]
    s01 = m[1, r, ch] + m[5, r, ch] + m[9, r, ch]
    s02 = m[2, r, ch] + m[6, r, ch] + m[10, r, ch]
    s03 = m[3, r, ch] + m[7, r, ch] + m[11, r, ch]
    s10 = m[4, r, ch] - m[8, r, ch] - m[12, r, ch]
    s11 = m[5, r, ch] - m[9, r, ch] - m[13, r, ch]
    s12 = m[6, r, ch] - m[10, r, ch] - m[14, r, ch]
    s13 = m[7, r, ch] - m[11, r, ch] - m[15, r, ch]
    return s00 + s01 + s02, s01 - s02 - s03, s10 + s11 + s12, s11 - s12 - s13


@transform_kernel
def output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, then the 2x2 max-pool of the tile, ``+ b``, ReLU.

    Parameters
    ----------
    m : (16, N * P * Q, F) the products ``M[xi]``; tile ``(n, p, q)`` is column
        ``(n * P + p) * Q + q`` and its 2x2 outputs are one pool window.
    b : (F,) bias; relu : apply the ReLU.
    out, argmax : (N, P, Q, F) buffers, as for ``convpool.pool_bias_relu``.

    Returns
    -------
    (out, argmax)
    """
    n, po, qo, f = out.shape
    for bi in range(n):
        for p in range(po):
            for q in range(qo):
                r = (bi * po + p) * qo + q
                o, a = out[bi, p, q], argmax[bi, p, q]
                for ch in range(f):
                    y00, y01, y10, y11 = tile_outputs(m, r, ch)
                    o[ch], a[ch] = window_max(y00, y01, y10, y11, b[ch], relu)
    return out, argmax


@transform_kernel
def output_transform(m: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, written to the tile's 2x2 block of ``y``.

    Parameters
    ----------
    m : (16, N * P * Q, F) the products ``M[xi]``, tile ``(n, p, q)`` in column
        ``(n * P + p) * Q + q``.
    b : (F,) bias.
    y : (N, 2P, 2Q, F) buffer, fully overwritten.

    Returns
    -------
    y
    """
    n, ho, wo, f = y.shape
    po, qo = ho // 2, wo // 2
    for bi in range(n):
        for p in range(po):
            for q in range(qo):
                r = (bi * po + p) * qo + q
                o0, o1 = y[bi, 2 * p, 2 * q], y[bi, 2 * p, 2 * q + 1]
                o2, o3 = y[bi, 2 * p + 1, 2 * q], y[bi, 2 * p + 1, 2 * q + 1]
                for ch in range(f):
                    y00, y01, y10, y11 = tile_outputs(m, r, ch)
                    o0[ch] = y00 + b[ch]
                    o1[ch] = y01 + b[ch]
                    o2[ch] = y10 + b[ch]
                    o3[ch] = y11 + b[ch]
    return y


@numba.njit(inline="always")
def write_tile_adjoint(
    y00: np.ndarray,
    y01: np.ndarray,
    y10: np.ndarray,
    y11: np.ndarray,
    dm: np.ndarray,
    r: int,
) -> None:
    """``dM[:, r] = A dY A^T`` for the tile gradient ``dY = [[y00, y01], [y10,
    y11]]`` (each (F,))."""
    # U = A dY: rows y0, y0 + y1, y0 - y1, -y1 (y0, y1: the rows of dY);
    # then dM = U A^T: columns u0, u0 + u1, u0 - u1, -u1 of each row.
    for row in range(4):
        o0, o1 = dm[4 * row, r], dm[4 * row + 1, r]
        o2, o3 = dm[4 * row + 2, r], dm[4 * row + 3, r]
        for ch in range(y00.shape[0]):
            if row == 0:
                u0, u1 = y00[ch], y01[ch]
            elif row == 1:
                u0, u1 = y00[ch] + y10[ch], y01[ch] + y11[ch]
            elif row == 2:
                u0, u1 = y00[ch] - y10[ch], y01[ch] - y11[ch]
            else:
                u0, u1 = -y10[ch], -y11[ch]
            o0[ch] = u0
            o1[ch] = u0 + u1
            o2[ch] = u0 - u1
            o3[ch] = -u1


@transform_kernel
def output_transform_pool_adjoint(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    dm: np.ndarray,
    db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile, where ``dY`` holds the pooled gradient (masked by
    the ReLU) at the window's winner and 0 elsewhere; adds ``sum dY`` to ``db``.

    Parameters
    ----------
    dout, p, argmax : (N, P, Q, F) upstream gradient, pooled output and winners.
    relu : whether the forward pass applied the ReLU.
    dm : (16, N * P * Q, F) buffer, fully overwritten.
    db : (F,) accumulator.

    Returns
    -------
    (dm, db)
    """
    n, po, qo, f = dout.shape
    y = np.empty((4, f), dtype=dm.dtype)  # dY of one tile, row-major
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                r = (bi * po + i) * qo + j
                window_grads(dout[bi, i, j], p[bi, i, j], argmax[bi, i, j], relu, y, db)
                write_tile_adjoint(y[0], y[1], y[2], y[3], dm, r)
    return dm, db


@transform_kernel
def output_transform_adjoint(
    dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Adjoint of :func:`output_transform`: ``dM = A dY A^T`` per tile, and ``db +=
    sum of dy``.

    Parameters
    ----------
    dy : (N, 2P, 2Q, F) gradient of the output.
    dm : (16, N * P * Q, F) buffer, fully overwritten.
    db : (F,) accumulator.

    Returns
    -------
    (dm, db)
    """
    n, ho, wo, f = dy.shape
    po, qo = ho // 2, wo // 2
    for bi in range(n):
        for i in range(po):
            for j in range(qo):
                r = (bi * po + i) * qo + j
                y00, y01 = dy[bi, 2 * i, 2 * j], dy[bi, 2 * i, 2 * j + 1]
                y10, y11 = dy[bi, 2 * i + 1, 2 * j], dy[bi, 2 * i + 1, 2 * j + 1]
                for ch in range(f):
                    db[ch] += y00[ch] + y01[ch] + y10[ch] + y11[ch]
                write_tile_adjoint(y00, y01, y10, y11, dm, r)
    return dm, db


@transform_kernel
def input_transform_adjoint(
    dv: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` where the tile lies in it.

    Parameters
    ----------
    dv : (16, N * tiles_h * tiles_w, C) gradient of ``V``.
    pt, pl, tiles_h, tiles_w : as for :func:`input_transform`.
    dx : (N, H, W, C) buffer, fully overwritten.

    Returns
    -------
    dx
    """
    n, h, w, c = dx.shape
    t = np.empty((4, 4, c), dtype=dx.dtype)
    for b in range(n):
        dx[b] = 0
        for p in range(tiles_h):
            for q in range(tiles_w):
                r = (b * tiles_h + p) * tiles_w + q
                # T = dV B^T (combine columns), then dd = B T (combine rows).
                for i in range(4):
                    v0, v1, v2, v3 = (
                        dv[4 * i, r],
                        dv[4 * i + 1, r],
                        dv[4 * i + 2, r],
                        dv[4 * i + 3, r],
                    )
                    for ch in range(c):
                        t[i, 0, ch] = v0[ch]
                        t[i, 1, ch] = v1[ch] - v2[ch] + v3[ch]
                        t[i, 2, ch] = v2[ch] + v1[ch] - v0[ch]
                        t[i, 3, ch] = -v3[ch]
                y0, x0 = 2 * p - pt, 2 * q - pl
                for j in range(4):
                    ix = x0 + j
                    if ix < 0 or ix >= w:
                        continue
                    for i in range(4):
                        iy = y0 + i
                        if iy < 0 or iy >= h:
                            continue
                        row = dx[b, iy, ix]
                        for ch in range(c):
                            t0, t1, t2, t3 = (
                                t[0, j, ch],
                                t[1, j, ch],
                                t[2, j, ch],
                                t[3, j, ch],
                            )
                            if i == 0:
                                row[ch] += t0
                            elif i == 1:
                                row[ch] += t1 - t2 + t3
                            elif i == 2:
                                row[ch] += t2 + t1 - t0
                            else:
                                row[ch] -= t3
    return dx


#: F(2x2, 3x3), the kernels of this module.
F2X2 = Algorithm(
    "F(2x2, 3x3)",
    2,
    kernel_transform,
    kernel_transform_adjoint,
    input_transform,
    input_transform_adjoint,
    output_transform,
    output_transform_adjoint,
    output_transform_pool,
)

__all__ = [
    "F2X2",
    "G",
    "input_transform",
    "input_transform_adjoint",
    "kernel_transform",
    "kernel_transform_adjoint",
    "output_transform",
    "output_transform_adjoint",
    "output_transform_pool",
    "output_transform_pool_adjoint",
]
