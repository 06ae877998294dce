"""Convolution kernels: Numba im2col / col2im around BLAS matmuls.

Layout is NHWC with Keras kernels ``w : (kh, kw, cin, cout)``. A convolution is one
matrix product once every receptive field is unrolled into a row::

    cols[(n, oy, ox), (i, j, c)] = xpad[n, oy*sh + i, ox*sw + j, c]   (im2col)
    y2d = cols @ w.reshape(kh*kw*cin, cout) + b                       (forward)
    dw = cols.T @ dout2d,  db = sum of dout2d rows,  dcols = dout2d @ w2d.T
    dx = col2im(dcols)   (the adjoint of im2col: scatter-add each row back)

In NHWC the ``kw * cin`` values of one kernel row are contiguous in ``x``, so im2col
copies runs of ``kw*cin`` floats, and both ``w.reshape`` and ``y2d.reshape`` are free.
Padding is applied inside the kernels (zeros written / gradients dropped), so no padded
copy of ``x`` is ever made.

Why this algorithm. Measured first on a 2-core AMD EPYC VM (OpenBLAS; a float32
2048^2 matmul at ~250 GFLOP/s), batch 128, best of 15-40 calls; the full table
comes from ``benchmarks/bench_conv.py``:

- im2col + sgemm against a direct Numba loop (output pixel x kernel tap x channel,
  vectorised over the filters, bias fused), forward only: 13x13x32 -> 64: 4.3 ms
  against 8.2 ms; 28x28x1 -> 32: a tie (with K = 9 both are bound by writing the
  11 MB output). The direct loop cannot approach BLAS on the layer that matters,
  so one algorithm is kept for all shapes. (Tried again on a 2-core Intel KVM
  machine with the 2x2 max-pool fused in: 4.0 ms against 4.3 ms for conv + pool,
  1 thread; LLVM keeps the four accumulator rows in memory, not registers.)
- The three matmuls of 13x13x32 -> 64 run at 190-250 GFLOP/s (forward 2.9 ms,
  dW 2.7 ms, dcols 2.4 ms), so im2col (0.7 ms) and col2im (0.7 ms) are what is
  left to make fast.
- Threads: each thread takes a share of the batch and runs this whole pipeline on
  it, serial kernels and a single-threaded BLAS (:mod:`tinynet.kernels.batch_split`
  says why and what it measured). The alternative, ``parallel=True`` kernels and
  multi-threaded matmuls, pays a 150 us parallel launch on the Intel machine (13
  per training step): 1 -> 2 threads took a step from 44 to 30 ms that way, from
  35 to 18-20 ms split by the batch.
- Writing im2col into a buffer the process already holds beats a fresh allocation
  (0.5 vs 0.9 ms on conv1, 0.8 vs 1.0 ms on conv2: first-touch page faults), so
  the plan's ``ConvPool`` step reuses its ``cols`` buffer between training steps.
- The bias is added by a kernel: 0.22 ms against 0.45 ms for NumPy's ``y2d += b``
  on conv1's (86528, 32) output.
- A ReLU can run in the convolution's epilogue (``relu=True``): :func:`bias_relu`
  applies ``max(y + b, 0)`` in place in one pass over the matmul output, where
  bias-add, the ReLU layer's ``x > 0`` mask and ``np.maximum`` take three passes
  and two fresh arrays; backward masks ``dout`` with ``y > 0`` in one pass
  (:func:`relu_mask`). MNIST convnet, 1 thread, CPU time, median of 40 steps:
  whole training step 35.7 (separate ReLU) against 31.9 ms. The plan's
  ``ConvPool`` step also runs a following 2x2 max-pool in the epilogue
  (:mod:`tinynet.kernels.convpool`).
- im2col copies a window that lies fully inside ``x`` as one gather through a
  table of offsets (kernel offset -> source offset from the window corner) instead
  of ``kh`` runs of ``kw*C`` floats: conv1 0.93 -> 0.42 ms, conv2 2.08 -> 1.51 ms.
- Each thread works through its share in chunks of images (:data:`CHUNK_BYTES` of
  the largest per-image array: 11 of conv2's images, 18 of conv1's, 15 for the
  Winograd path), so that an intermediate is read back soon after it was written,
  and the masked gradient and ``dcols`` live in chunk-sized scratch. On the Intel
  machine (2 MB L2 per core), the classic convnet's training step (2 threads, plans
  alternated, median of 420 steps) took 11.7 ms with 4 MB chunks, 11.2 ms with 1 MB
  and 11.0 ms with 1.5 MB.
- ``db`` as ``ones @ dout2d`` (a BLAS matrix-vector product, 0.13 ms on conv1)
  rather than ``dout2d.sum(axis=0)`` (1.1 ms).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

import numpy as np

from . import batch_split, convpool, serial_kernel, window_placement

T = TypeVar("T")


@serial_kernel
def im2col(
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    out: np.ndarray,
) -> np.ndarray:
    """Unroll the receptive fields of ``x`` into the rows of ``out``.

    Parameters
    ----------
    x : (N, H, W, C) C-contiguous input.
    kh, kw, sh, sw : kernel size and strides.
    pt, pl : zero padding added above and to the left (bottom/right padding is
        implied by ``ho``, ``wo``).
    ho, wo : output height and width.
    out : (N*ho*wo, kh*kw*C) C-contiguous buffer, fully overwritten; columns are
        ordered (i, j, c) to match ``w.reshape(kh*kw*C, cout)``.

    Returns
    -------
    out
    """
    n, h, w, c = x.shape
    x3 = x.reshape(n, h, w * c)
    xf = x.reshape(n, h * w * c)
    run = kw * c
    # A window fully inside x: short runs (conv1's are 3 floats) are copied as one
    # gather through a table of offsets from the window's top-left corner, which
    # beat a loop over runs (0.93 -> 0.42 ms); long runs (conv2's 96) as slices,
    # which vectorise: 0.93 -> 0.44 ms for 64 images on the Intel machine, where
    # the gather took twice as long as the slices.
    long_runs = run >= 16
    offsets = np.empty(kh * run, dtype=np.int64)
    for i in range(kh):
        for k in range(run):
            offsets[i * run + k] = i * w * c + k
    for b in range(n):
        for oy in range(ho):
            y0 = oy * sh - pt
            rows_inside = y0 >= 0 and y0 + kh <= h
            for ox in range(wo):
                r = (b * ho + oy) * wo + ox
                x0 = ox * sw - pl
                inside = x0 >= 0 and x0 + kw <= w
                if rows_inside and inside and long_runs:
                    row = out[r]
                    for i in range(kh):
                        src = x3[b, y0 + i, x0 * c : x0 * c + run]
                        dst = row[i * run : (i + 1) * run]
                        for k in range(run):
                            dst[k] = src[k]
                    continue
                if rows_inside and inside:
                    corner = (y0 * w + x0) * c
                    for t in range(kh * run):
                        out[r, t] = xf[b, corner + offsets[t]]
                    continue
                for i in range(kh):
                    iy = oy * sh - pt + i
                    base = i * run
                    if iy < 0 or iy >= h:
                        for k in range(run):
                            out[r, base + k] = 0
                    elif inside:
                        src = x0 * c
                        for k in range(run):
                            out[r, base + k] = x3[b, iy, src + k]
                    else:
                        for j in range(kw):
                            ix = x0 + j
                            if ix < 0 or ix >= w:
                                for ch in range(c):
                                    out[r, base + j * c + ch] = 0
                            else:
                                for ch in range(c):
                                    out[r, base + j * c + ch] = x3[b, iy, ix * c + ch]
    return out


@serial_kernel
def col2im(
    cols: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    out: np.ndarray,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add the rows of ``cols`` into ``out``.

    Parameters
    ----------
    cols : (N*ho*wo, kh*kw*C) C-contiguous gradient of the im2col matrix.
    kh, kw, sh, sw, pt, pl, ho, wo : as for :func:`im2col`.
    out : (N, H, W, C) C-contiguous buffer, fully overwritten; entries that fall in
        the padding are dropped.

    Returns
    -------
    out
    """
    n, h, w, c = out.shape
    o3 = out.reshape(n, h, w * c)
    run = kw * c
    for b in range(n):
        for iy in range(h):
            for k in range(w * c):
                o3[b, iy, k] = 0
        for oy in range(ho):
            for ox in range(wo):
                r = (b * ho + oy) * wo + ox
                x0 = ox * sw - pl
                inside = x0 >= 0 and x0 + kw <= w
                for i in range(kh):
                    iy = oy * sh - pt + i
                    if iy < 0 or iy >= h:
                        continue
                    base = i * run
                    if inside:
                        # 1-D slices: this loop vectorises; indexing o3 and cols
                        # per entry did not (1.27 -> 0.40 ms, conv2, 64 images).
                        dst = o3[b, iy, x0 * c : x0 * c + run]
                        src = cols[r, base : base + run]
                        for k in range(run):
                            dst[k] += src[k]
                    else:
                        for j in range(kw):
                            ix = x0 + j
                            if 0 <= ix < w:
                                for ch in range(c):
                                    o3[b, iy, ix * c + ch] += cols[r, base + j * c + ch]
    return out


@serial_kernel
def add_bias(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[r, :] += b`` for every row, in place.

    Parameters
    ----------
    y : (M, F) C-contiguous; b : (F,).

    Returns
    -------
    y
    """
    m, f = y.shape
    for r in range(m):
        for k in range(f):
            y[r, k] += b[k]
    return y


@serial_kernel
def bias_relu(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[r, :] = max(y[r, :] + b, 0)`` for every row, in place.

    Parameters
    ----------
    y : (M, F) C-contiguous; b : (F,).

    Returns
    -------
    y
    """
    m, f = y.shape
    for r in range(m):
        for k in range(f):
            y[r, k] = max(y[r, k] + b[k], 0)
    return y


@serial_kernel
def relu_mask(dout: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = dout * [y > 0]`` (ReLU backward from its output).

    Parameters
    ----------
    dout, y, out : (M, F) C-contiguous arrays; ``out`` is fully overwritten and may
        be ``dout`` itself.

    Returns
    -------
    out
    """
    m, f = out.shape
    for r in range(m):
        for k in range(f):
            # A multiply by the 0/1 mask vectorises (0.63 ms on conv1's 86528 x 32);
            # the select ``dout if y > 0 else 0`` compiled to scalar code (1.17 ms).
            out[r, k] = dout[r, k] * (y[r, k] > 0)
    return out


#: Images per chunk are chosen so that one chunk of the largest per-image array
#: (im2col rows, output, or gradient) stays near this size, i.e. in cache between
#: the kernel that writes it and the matmul that reads it: three quarters of a 2 MB
#: L2 cache.
CHUNK_BYTES = 1536 << 10


#: Up to this many kernel taps (``kh*kw*C``), the backward of a fused conv + pool that
#: needs no input gradient computes the weight gradient directly
#: (:func:`tinynet.kernels.convpool.pooled_weight_grad`) instead of writing ``dz``
#: and multiplying: ``dz`` has 4 F floats per 4 K F multiply-adds, so with few taps
#: the matmul is bound by memory. Measured at batch 128, 1 thread, 3x3 kernels, 32
#: filters: C = 1 (K = 9) 1.6 against 3.9 ms, C = 3 (27) 3.7 against 5.2 ms, C = 8
#: (72) 2.7 against 2.1 ms; the MNIST conv2 (K = 288) 9.8 against 5.6 ms.
DIRECT_WEIGHT_GRAD_MAX_TAPS = 32


def images_per_chunk(n: int, bytes_per_image: int) -> int:
    """How many of ``n`` images to process at once (at least one)."""
    return max(1, min(n, CHUNK_BYTES // max(bytes_per_image, 1)))


def batch_chunks(n: int, bytes_per_image: int) -> list[tuple[int, int]]:
    """``[0, n)`` in near-equal chunks of images whose largest intermediate
    (``bytes_per_image`` an image) stays near :data:`CHUNK_BYTES`, in cache, as
    many chunks as a multiple of the thread count (threads that run at the same
    speed end together). Fixed by ``n`` and the thread count, as a batch split's
    shares are, so the numbers are too, whichever thread runs which chunk."""
    threads = batch_split.threads()
    count = -(-n // images_per_chunk(n, bytes_per_image))
    return batch_split.shares(n, -(-count // threads) * threads)


def claim_chunks(work: Callable[[Iterator[int]], object], count: int) -> None:
    """Run ``work(claimed)`` on every thread of a batch split: ``claimed`` yields
    the indices of chunks ``0 .. count - 1`` as the thread claims them, in order,
    until none is left. A thread that wakes late, or runs slowly (another process
    on its core), claims fewer: with a fixed half of the batch each, the caller
    finished its half and then waited for the other thread's whole half (in 1 step
    of 10 that half started 1-5 ms late on the loaded 2-core VM, as long as the
    half itself took; ``benchmarks/split_waits.py``). Shipped CNN, training step,
    2 threads, wall, load average 2-5, 8 alternated runs of 30-60 steps
    (``benchmarks/interleaved_steps.py``): median 0.89-1.07x the fixed halves'
    (0.95x geometric mean, faster in 6 of 8); 1 thread unchanged.
    """
    claims = itertools.count()

    def claimed() -> Iterator[int]:
        while (i := next(claims)) < count:  # next() on a count is atomic
            yield i

    batch_split.run(lambda _start, _stop: work(claimed()), count)


def map_chunks(fn: Callable[[int, int], T], n: int, bytes_per_image: int) -> list[T]:
    """``[fn(s, e) for (s, e) in batch_chunks(n, bytes_per_image)]``, in chunk
    order, each chunk run by whichever thread claims it (:func:`claim_chunks`)."""
    chunks = batch_chunks(n, bytes_per_image)
    results: list[T | None] = [None] * len(chunks)

    def work(claimed: Iterator[int]) -> None:
        for i in claimed:
            results[i] = fn(*chunks[i])

    claim_chunks(work, len(chunks))
    return cast(list[T], results)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    cols: np.ndarray | None,
    relu: bool = False,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
    y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``y = conv(x, w) + b`` (then ``max(y, 0)`` if ``relu``) via im2col and matmuls.

    Parameters
    ----------
    x : (N, H, W, C) C-contiguous input; w : (kh, kw, C, F); b : (F,) or None.
    sh, sw, pt, pl, ho, wo : strides, top/left padding and output size.
    cols : (N*ho*wo, kh*kw*C) C-contiguous buffer for the im2col matrix, fully
        overwritten (a training layer reuses one across steps), or None for
        inference: then one chunk-sized scratch buffer serves every chunk and
        nothing is kept (the classic convnet's conv2 at batch 256 held a 35 MB
        im2col matrix per call before).
    relu : apply the ReLU in the same pass as the bias (:func:`bias_relu`).
    pool : None, or ``(out, argmax)`` buffers of shape (N, ho // 2, wo // 2, F):
        a 2x2 max-pool is then fused into the epilogue
        (:func:`tinynet.kernels.convpool.pool_bias_relu`), ``y`` is never stored
        whole, and the pooled ``out`` is returned in its place.
    y : (N, ho, wo, F) C-contiguous buffer for the output, fully overwritten, or
        None for a fresh array (a training step that keeps one avoids faulting in
        new memory on every call; ignored with ``pool``).

    Returns
    -------
    y : (N, ho, wo, F) (or the pooled output), and ``cols`` (None if it was None),
    which :func:`conv2d_backward` needs.
    """
    n = x.shape[0]
    kh, kw, c, f = w.shape
    k = kh * kw * c
    w2d = w.reshape(k, f)
    pix = ho * wo
    # Empty with a pool, whose output is never stored whole (here and below, an
    # array of 0 rows stands for "not needed", so that each buffer is an array).
    if pool is not None:
        y2d = np.empty((0, f), dtype=x.dtype)
    elif y is not None:
        y2d = y.reshape(n * pix, f)
    else:
        y2d = np.empty((n * pix, f), dtype=x.dtype)
    if b is not None:
        b = b.astype(x.dtype, copy=False)
    # The fused epilogues always add a bias.
    bias = np.zeros(f, x.dtype) if b is None else b

    def share(start: int, stop: int) -> None:
        step = images_per_chunk(stop - start, pix * max(k, f) * x.itemsize)
        # Scratch for the chunks where cols or y2d does not hold their rows.
        own_cols = np.empty((0 if cols is not None else step * pix, k), x.dtype)
        own_z = np.empty((0 if pool is None else step * pix, f), x.dtype)
        for s in range(start, stop, step):
            e = min(stop, s + step)
            rows = slice(s * pix, e * pix)
            chunk = cols[rows] if cols is not None else own_cols[: (e - s) * pix]
            im2col(x[s:e], kh, kw, sh, sw, pt, pl, ho, wo, chunk)
            z = y2d[rows] if pool is None else own_z[: (e - s) * pix]
            np.matmul(chunk, w2d, out=z)
            if pool is not None:
                out, argmax = pool
                convpool.pool_bias_relu(
                    z.reshape(e - s, ho, wo, f), bias, relu, out[s:e], argmax[s:e]
                )
            elif relu:
                bias_relu(z, bias)
            elif b is not None:
                add_bias(z, b)

    batch_split.run(share, n)
    if pool is not None:
        return pool[0], cols
    return y2d.reshape(n, ho, wo, f), cols


def conv2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    cols: np.ndarray,
    w: np.ndarray,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    need_dx: bool = True,
    y: np.ndarray | None = None,
    pool: tuple[np.ndarray, np.ndarray, bool, int, int] | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : (N, ho, wo, F) upstream gradient (of the pooled output, (N, ho // 2,
        wo // 2, F), with ``pool``).
    x : (N, H, W, C) the forward input (only its shape is used here).
    cols : (N*ho*wo, kh*kw*C) the im2col matrix returned by the forward pass.
    w : (kh, kw, C, F).
    need_dx : False skips the input gradient (a network's first layer needs none).
    y : (N, ho, wo, F) the output of a forward pass with ``relu=True``: the
        gradient then passes only where ``y > 0``. None: no ReLU.
    pool : for a forward pass with a fused pool, ``(out, argmax, relu, ho, wo)``:
        its pooled output and winners, whether it applied the ReLU, and the
        convolution's output size. The gradient of the convolution's output is
        rebuilt from them chunk by chunk
        (:func:`tinynet.kernels.convpool.unpool_relu`).

    Returns
    -------
    dx : (N, H, W, C) or None, dw : (kh, kw, C, F), db : (F,)
    """
    n, f = dout.shape[0], dout.shape[3]
    ho, wo = (dout.shape[1], dout.shape[2]) if pool is None else pool[3:]
    kh, kw, c, _ = w.shape
    k = kh * kw * c
    pix = ho * wo
    dout = np.ascontiguousarray(dout)
    dout2d = dout.reshape(-1, f)  # one row per output pixel (read without a pool)
    y2d = None if y is None else np.ascontiguousarray(y).reshape(n * pix, f)
    w2d_t = w.reshape(k, f).T
    # The weight gradient is computed with more rows than columns, (k, f) or (f, k):
    # with 2 BLAS threads on a busy machine the other orientation of these long,
    # thin products collapsed (conv1's 9 x 32 result: 800 ms per chunk against 6
    # ms as 32 x 9; conv2's 64 x 288: 100 ms against 6 ms as 288 x 64). With one
    # thread, or on a quiet machine, both orientations take the same time.
    tall = k >= f
    dx = np.empty(x.shape, dtype=dout.dtype) if need_dx else None
    # A network's first conv + pool (few taps, no dx wanted): the weight gradient
    # straight from the pooled gradient, without writing dz.
    direct = pool is not None and not need_dx and k <= DIRECT_WEIGHT_GRAD_MAX_TAPS
    tall = tall or direct

    def share(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        dw = np.zeros((k, f) if tall else (f, k), dtype=dout.dtype)
        db = np.zeros(f, dtype=dout.dtype)
        if direct and pool is not None:
            p, argmax, relu = pool[:3]
            rows = slice(start * pix, stop * pix)
            convpool.pooled_weight_grad(
                dout[start:stop], p[start:stop], argmax[start:stop], relu,
                cols[rows], ho, wo, dw, db,
            )  # fmt: skip
            return dw, db
        step = images_per_chunk(stop - start, pix * max(k, f) * dout.itemsize)
        ones = np.ones(step * pix, dtype=dout.dtype)
        masked = y is not None or pool is not None
        # Scratch (of 0 rows when not needed).
        dz_own = np.empty((step * pix if masked else 0, f), dtype=dout.dtype)
        dcols = np.empty((step * pix if need_dx else 0, k), dtype=dout.dtype)
        for s in range(start, stop, step):
            e = min(stop, s + step)
            rows = slice(s * pix, e * pix)
            m = (e - s) * pix
            if pool is not None:
                p, argmax, relu = pool[:3]
                dz = dz_own[:m]
                convpool.unpool_relu(
                    dout[s:e], p[s:e], argmax[s:e], relu, dz.reshape(e - s, ho, wo, f)
                )
            elif y2d is not None:
                dz = relu_mask(dout2d[rows], y2d[rows], dz_own[:m])
            else:
                dz = dout2d[rows]
            dw += cols[rows].T @ dz if tall else dz.T @ cols[rows]
            # A matrix-vector product: much faster than dz.sum(axis=0) here.
            db += ones[:m] @ dz
            if dx is not None:
                np.matmul(dz, w2d_t, out=dcols[:m])
                col2im(dcols[:m], kh, kw, sh, sw, pt, pl, ho, wo, dx[s:e])
        return dw, db

    parts = batch_split.run(share, n)
    dw = functools.reduce(np.add, (part[0] for part in parts))
    db = functools.reduce(np.add, (part[1] for part in parts))
    if not tall:
        dw = np.ascontiguousarray(dw.T)
    return dx, dw.reshape(w.shape), db


# ------------------------------------------------- spec-level entry points (layers)
def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    padding: str,
    keep_cols: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``y = conv(x, w) + b`` with Keras' padding rule; returns ``(y, cols)``.

    x : (N, H, W, C) C-contiguous float; w : (kh, kw, C, F) and b : (F,) (or None)
    of x's dtype. y : (N, ho, wo, F); cols : (N*ho*wo, kh*kw*C), the im2col matrix,
    which :func:`conv2d_grads` reuses (as CS231n's ``conv_forward_im2col`` does), or
    None unless ``keep_cols``: inference then needs only a chunk of it at a time
    (the whole matrix of the shipped CNN's second conv at batch 256 is 170 MB).
    """
    n, h, wd, _ = x.shape
    kh, kw, c, f = w.shape
    ho, wo, pt, pl = window_placement(h, wd, (kh, kw), strides, padding)
    cols = np.empty((n * ho * wo, kh * kw * c), x.dtype) if keep_cols else None
    return conv2d_forward(x, w, b, *strides, pt, pl, ho, wo, cols)


def conv2d_grads(
    dout: np.ndarray,
    x: np.ndarray,
    cols: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int],
    padding: str,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d`: ``(dx, dw, db)`` for dout : (N, ho, wo, F);
    dx is None when ``need_dx`` is False."""
    _, h, wd, _ = x.shape
    _, _, pt, pl = window_placement(h, wd, w.shape[:2], strides, padding)
    return conv2d_backward(dout, x, cols, w, *strides, pt, pl, need_dx)
