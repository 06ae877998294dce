"""Pooling kernels (NHWC), parallel over the batch.

Windows are ``ph x pw`` with strides ``sh, sw``, placed at ``oy*sh - pt`` and
``ox*sw - pl``; the part of a window that falls in the padding is ignored, as in
Keras: a max ignores it, an average divides by the number of real entries.
The channel axis is innermost in NHWC, so every inner loop runs over contiguous
channels and vectorises.

Max-pool forward also records where each maximum was (its offset in the window, in a
uint8 array for windows of up to 256 entries), so backward needs neither ``x`` nor
``y``: a later layer that modified ``y`` in place could not break it. It is also
what made backward fast: the first version recomputed the argmax from ``x`` and ``y``
(per channel, scanning the window until a match) and took 3.75 ms on 128x26x26x32;
the stored offsets, compared against each window position in a loop over channels
that vectorises, take 0.18 ms (forward 0.29 ms). Parallel over the batch against
serial: forward 0.29 vs 0.69 ms, backward 0.18 vs 0.45 ms (2x2 pool, 128x26x26x32).
A 2x2 window that lies inside ``x`` (the convnet's pools) is reduced with its four
candidates in registers (:func:`_max_of_four`), a channel loop that vectorises where
the general one, which updates ``out``/``argmax`` in memory per entry, compiled to
scalar code: forward 1.2 -> 0.3-0.4 ms on 128x26x26x32 (1 thread, in cache); in
the training step 1.04 -> 0.39 ms, whole step 28.9 -> 28.2 ms CPU. The same trick
for backward gained nothing measurable and is not used.
When the windows tile the input (stride = pool size, the usual case) backward writes
every entry of ``dx`` once, as ``dout * (offset == k)``, instead of zeroing ``dx`` and
adding into it: 0.77 -> 0.36 ms on 128x26x26x32 with all arrays in cache (in a
training step, where ``dx`` is new memory, ~1.0 -> 0.9 ms).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from . import parallel_kernel, window_placement


@numba.njit(inline="always")
def _max_of_four(
    x: np.ndarray, b: int, ya: int, xa: int, out: np.ndarray, argmax: np.ndarray
) -> None:
    """A 2x2 window inside ``x``: maximum and offset with the four candidates in
    registers, a loop over channels that vectorises (the general loop updates
    ``out`` and ``argmax`` in memory per entry and compiled to scalar code)."""
    p00, p01 = x[b, ya, xa], x[b, ya, xa + 1]
    p10, p11 = x[b, ya + 1, xa], x[b, ya + 1, xa + 1]
    for ch in range(out.shape[0]):
        m = p00[ch]
        k = 0
        if p01[ch] > m:
            m = p01[ch]
            k = 1
        if p10[ch] > m:
            m = p10[ch]
            k = 2
        if p11[ch] > m:
            m = p11[ch]
            k = 3
        out[ch] = m
        argmax[ch] = k


@parallel_kernel
def maxpool_forward(
    x: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
    argmax: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima and where they are.

    Parameters
    ----------
    x : (N, H, W, C) C-contiguous input.
    ph, pw, sh, sw : pool size and strides.
    pt, pl : padding above and to the left (the rest is implied by ``out``).
    out : (N, ho, wo, C) C-contiguous buffer, fully overwritten with the maxima. Every
        window must overlap ``x`` in at least one entry.
    argmax : (N, ho, wo, C) integer buffer (uint8 is enough when ``ph*pw <= 256``),
        fully overwritten with ``i*pw + j``, the offset in its window of the first
        maximum in row-major order.

    Returns
    -------
    (out, argmax)
    """
    n, h, w, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    two_by_two = ph == 2 and pw == 2
    for b in prange(n):
        for oy in range(ho):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(wo):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, w)
                if two_by_two and yb - ya == 2 and xb - xa == 2:
                    _max_of_four(x, b, ya, xa, out[b, oy, ox], argmax[b, oy, ox])
                    continue
                k0 = (ya - y0) * pw + (xa - x0)
                for ch in range(c):
                    out[b, oy, ox, ch] = x[b, ya, xa, ch]
                    argmax[b, oy, ox, ch] = k0
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        k = (iy - y0) * pw + (ix - x0)
                        for ch in range(c):
                            v = x[b, iy, ix, ch]
                            if v > out[b, oy, ox, ch]:
                                out[b, oy, ox, ch] = v
                                argmax[b, oy, ox, ch] = k
    return out, argmax


@parallel_kernel
def maxpool_backward(
    dout: np.ndarray,
    argmax: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
) -> np.ndarray:
    """Route each upstream gradient to the maximum of its window.

    Parameters
    ----------
    dout : (N, ho, wo, C) upstream gradient.
    argmax : (N, ho, wo, C) window offsets written by :func:`maxpool_forward`.
    ph, pw, sh, sw, pt, pl : as for :func:`maxpool_forward`.
    out : (N, H, W, C) C-contiguous buffer, fully overwritten with ``dx``.

    Returns
    -------
    out
    """
    n, h, w, c = out.shape
    ho, wo = dout.shape[1], dout.shape[2]
    # Windows that tile the input (stride = pool size, no padding before) each own
    # their entries, so every entry is written once, with no zeroing pass and no +=.
    tiled = sh == ph and sw == pw and pt == 0 and pl == 0
    hc, wc = min(ho * ph, h), min(wo * pw, w)
    for b in prange(n):
        if tiled:
            # Rows and columns after the last window (valid padding) get nothing.
            out[b, hc:] = 0
            out[b, :hc, wc:] = 0
        else:
            out[b] = 0
        for oy in range(ho):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(wo):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, w)
                # Visit every window entry and compare its offset with the stored
                # one: a compare per channel, which vectorises, where decoding the
                # offset into (i, j) would need an integer division per entry.
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        k = (iy - y0) * pw + (ix - x0)
                        if tiled:
                            for ch in range(c):
                                out[b, iy, ix, ch] = dout[b, oy, ox, ch] * (
                                    argmax[b, oy, ox, ch] == k
                                )
                        else:
                            for ch in range(c):
                                if argmax[b, oy, ox, ch] == k:
                                    out[b, iy, ix, ch] += dout[b, oy, ox, ch]
    return out


@parallel_kernel
def avgpool_forward(
    x: np.ndarray, ph: int, pw: int, sh: int, sw: int, pt: int, pl: int, out: np.ndarray
) -> np.ndarray:
    """Window means over the entries inside ``x`` (padding is not counted).

    Parameters and return as for :func:`maxpool_forward`.
    """
    n, h, w, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    for b in prange(n):
        for oy in range(ho):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(wo):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, w)
                scale = 1.0 / ((yb - ya) * (xb - xa))
                for ch in range(c):
                    out[b, oy, ox, ch] = 0
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        for ch in range(c):
                            out[b, oy, ox, ch] += x[b, iy, ix, ch]
                for ch in range(c):
                    out[b, oy, ox, ch] *= scale
    return out


@parallel_kernel
def avgpool_backward(
    dout: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
) -> np.ndarray:
    """Spread each upstream gradient evenly over the real entries of its window.

    Parameters
    ----------
    dout : (N, ho, wo, C) upstream gradient.
    ph, pw, sh, sw, pt, pl : as for :func:`maxpool_forward`.
    out : (N, H, W, C) C-contiguous buffer, fully overwritten with ``dx``.

    Returns
    -------
    out
    """
    n, h, w, c = out.shape
    ho, wo = dout.shape[1], dout.shape[2]
    for b in prange(n):
        out[b] = 0
        for oy in range(ho):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(wo):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, w)
                scale = 1.0 / ((yb - ya) * (xb - xa))
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        for ch in range(c):
                            out[b, iy, ix, ch] += dout[b, oy, ox, ch] * scale
    return out


# ------------------------------------------------- spec-level entry points (layers)
def max_pool2d(
    x: np.ndarray, pool_size: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool an (N, H, W, C) C-contiguous float array; return ``(y, argmax)``:
    y : (N, ho, wo, C), and argmax (same shape) the offset ``i * pw + j`` of each
    window's first maximum, which :func:`max_pool2d_backward` routes through."""
    n, h, w, c = x.shape
    ho, wo, pt, pl = window_placement(h, w, pool_size, strides, padding)
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    # A window offset fits a byte for windows of up to 256 entries.
    window = pool_size[0] * pool_size[1]
    argmax = np.empty(y.shape, dtype=np.uint8 if window <= 256 else np.int32)
    maxpool_forward(x, *pool_size, *strides, pt, pl, y, argmax)
    return y, argmax


def max_pool2d_backward(
    dout: np.ndarray,
    argmax: np.ndarray,
    x_shape: tuple[int, ...],
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> np.ndarray:
    """dout : (N, ho, wo, C) C-contiguous -> dx : ``x_shape``, each gradient routed
    to its window's maximum."""
    _, h, w, _ = x_shape
    _, _, pt, pl = window_placement(h, w, pool_size, strides, padding)
    dx = np.empty(x_shape, dtype=dout.dtype)
    return maxpool_backward(dout, argmax, *pool_size, *strides, pt, pl, dx)


def avg_pool2d(
    x: np.ndarray, pool_size: tuple[int, int], strides: tuple[int, int], padding: str
) -> np.ndarray:
    """Average-pool an (N, H, W, C) C-contiguous float array (padding not counted)."""
    n, h, w, c = x.shape
    ho, wo, pt, pl = window_placement(h, w, pool_size, strides, padding)
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    return avgpool_forward(x, *pool_size, *strides, pt, pl, y)


def avg_pool2d_backward(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> np.ndarray:
    """dout : (N, ho, wo, C) C-contiguous -> dx : ``x_shape``."""
    _, h, w, _ = x_shape
    _, _, pt, pl = window_placement(h, w, pool_size, strides, padding)
    dx = np.empty(x_shape, dtype=dout.dtype)
    return avgpool_backward(dout, *pool_size, *strides, pt, pl, dx)
