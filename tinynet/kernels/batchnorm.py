"""Epilogue kernels for a convolution followed by BatchNorm and ReLU (and a 2x2
max-pool): the plan's ``ConvBNReLU`` steps (``tinynet/plan/conv_bn_relu.py``).

Run as layers, the conv output ``z`` goes through memory many times in training:
the BatchNorm layer reads it for the mean, again for the variance, writes the
normalised ``xh`` and then ``y``; the ReLU reads ``y`` for its mask and writes a
third array; the pool reads that. Here each pass is one kernel that touches every
array once, over ``(M, F)`` views (``M`` = pixels of the batch, ``F`` channels),
the channel loop innermost so it vectorises:

- :func:`channel_moments` sums ``z - shift`` and its square in one read, in
  blocks of rows, then float64 (a shift near the mean, the first row, keeps
  ``E[d^2] - E[d]^2`` exact enough: ``tests/test_conv_bn_relu.py`` compares it
  with the layer in float64);
- :func:`normalize_relu` writes ``y = max((z - mean) * scale + beta, 0)`` with
  ``scale = gamma / sqrt(var + eps)``, or :func:`normalize_relu_pool` the 2x2
  max-pool of it (and which entry won) without storing ``y`` whole;
- backward, :func:`normalize_backward_sums` gives ``dbeta = sum(g)`` and
  ``dgamma = sum(g * xh)`` of the ReLU-masked gradient ``g``, and
  :func:`normalize_backward` writes ``dz = scale * (g - dbeta / M - xh * dgamma /
  M)`` (the batch-norm backward of ``tinynet.layers.BatchNorm``), both recomputing
  ``xh = (z - mean) * inv_std`` instead of reading a stored copy; after a pool,
  the routed gradient is zero but at the winners, so the same sums come from
  :func:`normalize_backward_sums` over the pooled arrays and the winners' ``z``
  (which :func:`normalize_relu_pool` keeps), and :func:`pooled_normalize_backward`
  writes ``dz`` from them: the routed gradient is never written;
  :func:`relu_mask_sums` writes ``g`` itself with ``dbeta``, for a step that
  takes the rest from matrix products (``tinynet.plan.FewTapsConvBNReLU``), and
  :func:`relu_mask_products` takes ``dbeta`` and the product ``c^T g`` with the
  step's im2col rows ``c`` without writing ``g``.

Pooling the normalised values is exact as in ``kernels.convpool``: ReLU and the
``+ beta`` are monotone, so the pool takes the maximum of ``(z - mean) * scale``
and applies them once. ``scale`` may be negative, so the pool cannot run on ``z``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba.np.numpy_support import carray

from . import serial_kernel, stack_empty
from .convpool import window_max

#: Rows :func:`relu_mask_sums` adds in the array's own dtype before float64.
SUM_BLOCK = 64


@serial_kernel
def channel_moments(z: np.ndarray, shift: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """``sums[0] += sum over rows of (z - shift)``, ``sums[1] += sum of (z - shift)^2``.

    The sums run in ``z``'s dtype over blocks of :data:`SUM_BLOCK` rows, then in
    float64, about ``shift`` in ``z``'s dtype (the plan passes a row of ``z``,
    exact): float64 arithmetic in the loop took 2.2x as long (24x24x32, 9 images
    in cache, 1 thread: 61 against 28 us); float32 blocks leave the sums within
    ~2e-7 of float64's.

    Parameters
    ----------
    z : (M, F) C-contiguous; shift : (F,) a value near each channel's mean.
    sums : (2, F) float64 accumulators, added to.

    Returns
    -------
    sums
    """
    m, f = z.shape
    centre = shift.astype(z.dtype)
    part1, part2 = np.zeros(f, z.dtype), np.zeros(f, z.dtype)
    s1, s2 = sums[0], sums[1]
    for r in range(m):
        row = z[r]
        for ch in range(f):
            d = row[ch] - centre[ch]
            part1[ch] += d
            part2[ch] += d * d
        if (r + 1) % SUM_BLOCK == 0 or r == m - 1:
            for ch in range(f):
                s1[ch] += part1[ch]
                s2[ch] += part2[ch]
                part1[ch] = 0
                part2[ch] = 0
    return sums


@serial_kernel
def normalize_relu(
    z: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    beta: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    """``y = max((z - mean) * scale + beta, 0)``, row by row.

    Parameters
    ----------
    z, y : (M, F) C-contiguous; ``y`` is fully overwritten.
    mean, scale, beta : (F,) with ``scale = gamma / sqrt(var + eps)``.

    Returns
    -------
    y
    """
    m, f = z.shape
    for r in range(m):
        zr, yr = z[r], y[r]
        for ch in range(f):
            yr[ch] = max((zr[ch] - mean[ch]) * scale[ch] + beta[ch], 0)
    return y


@serial_kernel
def normalize_relu_pool(
    z: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    beta: np.ndarray,
    out: np.ndarray,
    argmax: np.ndarray,
    winner_z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2x2 max-pool of :func:`normalize_relu`'s output, each window's winner
    and its ``z``.

    ``winner_z`` is all the backward sums need of ``z`` (the routed gradient is
    zero elsewhere): a quarter of its size, written while ``z`` is read here.
    Measured on the AMD EPYC VM (24x24x32 at batch 128, caches flushed, 1 thread,
    CPU time, medians of 40 alternated rounds): this kernel 1.38 -> 1.68 ms, the
    backward sums 1.73 ms (reading ``z`` at the winners) -> 0.72 ms.

    Parameters
    ----------
    z : (N, ho, wo, F) C-contiguous conv output.
    mean, scale, beta : (F,) as for :func:`normalize_relu`.
    out : (N, ho // 2, wo // 2, F) buffer, fully overwritten.
    argmax : (N, ho // 2, wo // 2, F) uint8 buffer, fully overwritten with ``2a +
        c`` for the winner ``z[n, 2p + a, 2q + c]`` (the first on ties).
    winner_z : (N, ho // 2, wo // 2, F) buffer, fully overwritten with the
        winner's ``z``.

    Returns
    -------
    (out, argmax, winner_z)
    """
    n = z.shape[0]
    f = z.shape[3]
    po, qo = out.shape[1], out.shape[2]
    for bi in range(n):
        for p in range(po):
            for q in range(qo):
                z0, z1 = z[bi, 2 * p, 2 * q], z[bi, 2 * p, 2 * q + 1]
                z2, z3 = z[bi, 2 * p + 1, 2 * q], z[bi, 2 * p + 1, 2 * q + 1]
                o, a, wz = out[bi, p, q], argmax[bi, p, q], winner_z[bi, p, q]
                for ch in range(f):
                    mu, s = mean[ch], scale[ch]
                    o[ch], k = window_max(
                        (z0[ch] - mu) * s, (z1[ch] - mu) * s,
                        (z2[ch] - mu) * s, (z3[ch] - mu) * s, beta[ch], True,
                    )  # fmt: skip
                    a[ch] = k
                    # 0/1 mask multiplies vectorise; selects compiled to scalar code.
                    wz[ch] = (
                        z0[ch] * (k == 0) + z1[ch] * (k == 1)
                        + z2[ch] * (k == 2) + z3[ch] * (k == 3)
                    )  # fmt: skip
    return out, argmax, winner_z


@serial_kernel
def normalize_backward_sums(
    dy: np.ndarray,
    y: np.ndarray | None,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    sums: np.ndarray,
) -> np.ndarray:
    """``sums[0] += sum of g``, ``sums[1] += sum of g * xh`` over the rows, where
    ``g = dy * [y > 0]`` (just ``dy`` if ``y`` is None) and ``xh = (z - mean) *
    inv_std``: the partial ``dbeta`` and ``dgamma``.

    Parameters
    ----------
    dy, z : (M, F) C-contiguous; y : (M, F) the ReLU's output, or None.
    mean, inv_std : (F,) the batch statistics of the forward pass.
    sums : (2, F) float64 accumulators, added to.

    Returns
    -------
    sums
    """
    m, f = z.shape
    s1, s2 = sums[0], sums[1]
    for r in range(m):
        dr, zr = dy[r], z[r]
        for ch in range(f):
            g = dr[ch] * (y[r, ch] > 0) if y is not None else dr[ch]
            s1[ch] += g
            s2[ch] += g * ((zr[ch] - mean[ch]) * inv_std[ch])
    return sums


@serial_kernel
def normalize_backward(
    dy: np.ndarray,
    y: np.ndarray | None,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dbeta: np.ndarray,
    mean_dgamma: np.ndarray,
    dz: np.ndarray,
) -> np.ndarray:
    """``dz = scale * (g - mean_dbeta - xh * mean_dgamma)``, with ``g`` and ``xh`` as
    for :func:`normalize_backward_sums`.

    Parameters
    ----------
    dy, y, z, mean, inv_std : as for :func:`normalize_backward_sums`.
    scale : (F,) ``gamma * inv_std``.
    mean_dbeta, mean_dgamma : (F,) ``dbeta / M`` and ``dgamma / M`` over the batch.
    dz : (M, F) C-contiguous, fully overwritten; may be ``dy`` itself.

    Returns
    -------
    dz
    """
    m, f = z.shape
    for r in range(m):
        dr, zr, out = dy[r], z[r], dz[r]
        for ch in range(f):
            g = dr[ch] * (y[r, ch] > 0) if y is not None else dr[ch]
            xh = (zr[ch] - mean[ch]) * inv_std[ch]
            out[ch] = scale[ch] * (g - mean_dbeta[ch] - xh * mean_dgamma[ch])
    return dz


@functools.partial(serial_kernel, fma=True)
def pooled_normalize_backward(
    dout: np.ndarray,
    out: np.ndarray,
    argmax: np.ndarray,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dbeta: np.ndarray,
    mean_dgamma: np.ndarray,
    dz: np.ndarray,
) -> np.ndarray:
    """:func:`normalize_backward` of the gradient a 2x2 max-pool after the ReLU
    routes back (``g = dout * [out > 0]`` at each window's winner, 0 elsewhere, as
    ``convpool.unpool_relu`` with ``relu`` writes it), in one pass that never
    writes ``g``.

    Written apart, ``g`` went to ``dz`` and ``dz`` was then overwritten in place,
    and a loop whose output overlaps its input runs as scalar code: shipped CNN's
    second block, batch 128, 1 thread, in a training step, 2.3 ms for the unpool
    and 3.1 ms for the in-place normalisation, against 2.3 ms for this kernel
    (which reads ``z`` from memory; 0.9 ms on data already in cache).

    ``dz = scale g + (shift + slope z)`` with ``slope = -scale inv_std
    mean_dgamma`` and ``shift = -scale mean_dbeta - slope mean`` per channel: two
    multiply-adds an entry where ``scale (g - mean_dbeta - xh mean_dgamma)`` took
    five operations (the rounding of ``shift + slope z``, ~eps ``|slope z|``, is
    that of ``z`` itself, stored in float32), entries in ``z``'s order, and every
    array indexed in place: the same loop taking row views (``z[bi, i, j]``) of
    the five arrays a pixel ran 3.5 ms. The shipped CNN's 24x24x32
    block, batch 128 in chunks of 12 images, ``z`` from memory, one thread,
    medians of 15: 1.46-1.57 -> 0.92-0.95 ms.

    Parameters
    ----------
    dout, out, argmax : (N, P, Q, F) the pooled output's gradient, the pooled
        output and the winners (as :func:`normalize_relu_pool` writes them).
    z : (N, ho, wo, F) the conv output, ``ho // 2 == P``, ``wo // 2 == Q``; a last
        odd row or column, which the pool dropped, gets ``g = 0``.
    mean, inv_std, scale, mean_dbeta, mean_dgamma : as for
        :func:`normalize_backward`.
    dz : (N, ho, wo, F) C-contiguous, fully overwritten; must not overlap the
        other arrays.

    Returns
    -------
    dz
    """
    n, ho, wo, f = z.shape
    po, qo = dout.shape[1], dout.shape[2]
    slope = -scale * inv_std * mean_dgamma
    shift = -scale * mean_dbeta - slope * mean
    for bi in range(n):
        for i in range(ho):
            for j in range(wo):
                if i >= 2 * po or j >= 2 * qo:  # dropped by the pool: g = 0
                    for ch in range(f):
                        dz[bi, i, j, ch] = shift[ch] + slope[ch] * z[bi, i, j, ch]
                    continue
                p, q, k = i // 2, j // 2, (i % 2) * 2 + j % 2
                for ch in range(f):
                    # 0/1 mask multiplies vectorise; selects compiled to scalar code.
                    winner = (out[bi, p, q, ch] > 0) & (argmax[bi, p, q, ch] == k)
                    g = dout[bi, p, q, ch] * winner
                    dz[bi, i, j, ch] = scale[ch] * g + (
                        shift[ch] + slope[ch] * z[bi, i, j, ch]
                    )
    return dz


@serial_kernel
def relu_mask_sums(
    dout: np.ndarray, y: np.ndarray, out: np.ndarray, sums: np.ndarray
) -> np.ndarray:
    """``out = dout * [y > 0]`` (ReLU backward from its output) and ``sums += the
    column sums of out``: the masked gradient and ``dbeta`` in one pass.

    The sums run in ``out``'s dtype over blocks of :data:`SUM_BLOCK` rows, then in
    float64: a float64 accumulator in this loop kept it from vectorising.

    Parameters
    ----------
    dout, y, out : (M, F) C-contiguous arrays; ``out`` is fully overwritten.
    sums : (F,) float64 accumulator, added to.

    Returns
    -------
    out
    """
    m, f = out.shape
    part = np.zeros(f, out.dtype)
    for r in range(m):
        dr, yr, orow = dout[r], y[r], out[r]
        for ch in range(f):
            # A multiply by the 0/1 mask vectorises; a select compiled to scalar code.
            g = dr[ch] * (yr[ch] > 0)
            orow[ch] = g
            part[ch] += g
        if (r + 1) % SUM_BLOCK == 0 or r == m - 1:
            for ch in range(f):
                sums[ch] += part[ch]
                part[ch] = 0
    return out


#: Up to this many accumulators (``(taps + 1) * F``: 20 zmm registers of float32),
#: :func:`relu_mask_products` runs; the shipped CNN's first block has 10 x 32.
#: Beyond, they would spill out of the registers: the step writes ``g``
#: (:func:`relu_mask_sums`) and multiplies.
MAX_MASK_PRODUCTS = 320


@functools.cache
def _relu_mask_products_kernel(taps: int, width: int) -> Any:
    """:func:`relu_mask_products` compiled for ``taps`` columns of ``cols`` and
    ``width`` channels (constants of the code, so the accumulators stay in
    registers)."""
    size = (taps + 1) * width

    def kernel(
        dout: np.ndarray,
        y: np.ndarray,
        cols: np.ndarray,
        products: np.ndarray,
        sums: np.ndarray,
    ) -> np.ndarray:
        m = dout.shape[0]
        acc = carray(stack_empty(dout, size), (taps + 1, width))
        x = carray(stack_empty(dout, taps), (taps,))
        for r0 in range(0, m, SUM_BLOCK):
            for t in range(taps + 1):
                for ch in range(width):
                    acc[t, ch] = 0.0
            for r in range(r0, min(r0 + SUM_BLOCK, m)):
                for t in range(taps):
                    x[t] = cols[r, t]
                for ch in range(width):
                    # A multiply by the 0/1 mask vectorises; a select compiled to
                    # scalar code.
                    g = dout[r, ch] * (y[r, ch] > 0)
                    acc[taps, ch] += g
                    for t in range(taps):
                        acc[t, ch] += x[t] * g
            for t in range(taps):
                for ch in range(width):
                    products[t, ch] += acc[t, ch]
            for ch in range(width):
                sums[ch] += acc[taps, ch]
        return products

    return serial_kernel(kernel, fma=True)


def relu_mask_products(
    dout: np.ndarray,
    y: np.ndarray,
    cols: np.ndarray,
    products: np.ndarray,
    sums: np.ndarray,
) -> np.ndarray:
    """``products += cols^T g`` and ``sums += the column sums of g`` for the
    ReLU-masked gradient ``g = dout * [y > 0]``, in one pass that never writes
    ``g``: what :func:`relu_mask_sums` and a matrix product of its output give.

    Blocks of :data:`SUM_BLOCK` rows run in ``dout``'s dtype, in registers, then
    go to the float64 accumulators. The shipped CNN's first block (9 taps, 32
    channels, batch 128 in chunks of 17 images, one thread, medians of 11,
    scratch script): 1.55-1.75 ms for :func:`relu_mask_sums` and ``cols.T @ g``
    against 0.45-0.47 ms; compiled for AVX2 alone (``NUMBA_CPU_NAME=haswell``,
    AVX-512 taken out of ``NUMBA_CPU_FEATURES``), where the sums spill out of the
    16 registers, 1.73-1.77 against 0.97-1.02 ms.

    Parameters
    ----------
    dout, y : (M, F) C-contiguous; cols : (M, K) C-contiguous, with ``(K + 1) * F
        <=`` :data:`MAX_MASK_PRODUCTS`.
    products : (K, F) float64 accumulator, added to.
    sums : (F,) float64 accumulator, added to.

    Returns
    -------
    products
    """
    taps, width = cols.shape[1], dout.shape[1]
    if (taps + 1) * width > MAX_MASK_PRODUCTS:
        raise ValueError(
            f"relu_mask_products: (K + 1) * F = {(taps + 1) * width} accumulators, "
            f"more than MAX_MASK_PRODUCTS = {MAX_MASK_PRODUCTS}"
        )
    result: np.ndarray = _relu_mask_products_kernel(taps, width)(
        dout, y, cols, products, sums
    )
    return result
