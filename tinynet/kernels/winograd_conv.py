"""The chunked drivers of a Winograd stride-1 3x3 convolution, whatever the
algorithm: the batch runs chunk by chunk, each chunk on whichever thread claims it
(``conv.claim_chunks``): the input transform, one matrix product per
transformed-tile position over all the chunk's tiles
(:func:`~tinynet.kernels.winograd_products.products`), then the output transform
while the products are in cache. Forward with the
2x2 max-pool fused (:func:`conv3x3_pool_forward`) or every output kept
(:func:`conv3x3_forward`), their gradients, and the chunk loops under them
(:func:`forward_chunks`, :func:`backward_chunks`) for composite steps with their
own epilogue (``tinynet.plan.ConvBNReLU``).

The algorithm is an argument, an :class:`~tinynet.kernels.winograd_algorithm.Algorithm`:
:data:`~tinynet.kernels.winograd.F2X2` (the default; :mod:`tinynet.kernels.winograd`
holds its kernels, the math, the layout and the measurements) or
:data:`~tinynet.kernels.winograd43.F4X4` (:mod:`tinynet.kernels.winograd43`) or
:data:`~tinynet.kernels.winograd63.F6X6` (:mod:`tinynet.kernels.winograd63`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .chunk_sums import InOrderSums
from .conv import batch_chunks, claim_chunks
from .winograd import F2X2, output_transform_pool_adjoint
from .winograd_algorithm import Algorithm
from .winograd_products import products

#: Channels from which a fused 3x3 conv + pool runs through Winograd rather than
#: im2col (``tinynet.plan.ConvPool``). Measured on the MNIST conv2
#: (C = 32); a 1-channel input keeps im2col (K = 9, with the direct weight gradient
#: of ``convpool.pooled_weight_grad``), where the transforms would move 16 floats per
#: tile and channel for 9 multiply-adds per output.
MIN_CHANNELS = 8


def planes(scratch: np.ndarray, points: int, k: int, channels: int) -> np.ndarray:
    """The start of the flat ``scratch`` as C-contiguous (points, k, channels)
    planes: the chunk-sized view of a buffer allocated for the largest chunk.

    Why not ``buffer[:, :k]`` of a (points, k_max, channels) buffer: that slice is
    strided, and the transforms compiled for it ran up to 1.7x as long (F(4x4)
    input transform, 26x26x32, 4 images: 52 against 33 us).
    """
    return scratch[: points * k * channels].reshape(points, k, channels)


def forward_chunks(
    x: np.ndarray,
    w: np.ndarray,
    pt: int,
    pl: int,
    tiles_h: int,
    tiles_w: int,
    v: np.ndarray | None,
    epilogue: Callable[[np.ndarray, int, int], object],
    algorithm: Algorithm = F2X2,
) -> None:
    """Run the input transform and the ``algorithm.points`` matrix products over
    the batch, chunk by chunk (``conv.batch_chunks``, ``conv.claim_chunks``);
    ``epilogue(m, s, e)`` consumes the products of images ``[s, e)`` while they
    are in cache (a composite step may take more than the output transform there:
    ``tinynet.plan.ConvBNReLU`` takes the batch statistics). ``v`` as for
    :func:`conv3x3_pool_forward` (with ``algorithm.points`` planes)."""
    n, _, _, c = x.shape
    f = w.shape[3]
    tiles = tiles_h * tiles_w
    points = algorithm.points
    u = algorithm.kernel_transform(w)
    chunks = batch_chunks(n, points * tiles * max(c, f) * x.itemsize)
    largest = max(e - s for s, e in chunks)

    def work(claimed: Iterator[int]) -> None:
        # Scratch for the thread, reused chunk after chunk: fresh memory per chunk
        # (first-touch page faults, taken one thread at a time) did not scale.
        own_v = np.empty(points * largest * tiles * c if v is None else 0, x.dtype)
        own_m = np.empty(points * largest * tiles * f, x.dtype)
        for i in claimed:
            s, e = chunks[i]
            k = (e - s) * tiles
            if v is None:
                vc = planes(own_v, points, k, c)
            else:
                vc = v[:, s * tiles : e * tiles]
            algorithm.input_transform(x[s:e], pt, pl, tiles_h, tiles_w, vc)
            m = planes(own_m, points, k, f)
            products(vc, u, m)
            epilogue(m, s, e)

    claim_chunks(work, len(chunks))


def conv3x3_pool_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    pt: int,
    pl: int,
    relu: bool,
    v: np.ndarray | None,
    out: np.ndarray,
    argmax: np.ndarray,
    algorithm: Algorithm = F2X2,
) -> np.ndarray:
    """Pooled ``relu(conv3x3(x, w) + b)`` (stride 1) by Winograd ``algorithm``
    (F(2x2, 3x3) computes only the tiles the pool keeps; :func:`conv3x3_pool_backward`
    takes only its transform).

    Parameters
    ----------
    x : (N, H, W, C) C-contiguous input; w : (3, 3, C, F); b : (F,) or None.
    pt, pl : zero padding above and to the left (the conv's geometry).
    relu : apply the ReLU.
    v : (points, N * tiles, C) buffer for the transformed input
        (``algorithm.points``, ``algorithm.pooled_tiles(P, Q)``), kept for backward
        (training), or None (inference: chunk-sized scratch).
    out, argmax : (N, P, Q, F) pooled output and winners (P, Q = conv output // 2).

    Returns
    -------
    out
    """
    b = np.zeros(w.shape[3], x.dtype) if b is None else b.astype(x.dtype, copy=False)

    def epilogue(m: np.ndarray, s: int, e: int) -> None:
        algorithm.output_transform_pool(m, b, relu, out[s:e], argmax[s:e])

    tiles_h, tiles_w = algorithm.pooled_tiles(out.shape[1], out.shape[2])
    forward_chunks(x, w, pt, pl, tiles_h, tiles_w, v, epilogue, algorithm)
    return out


def conv3x3_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    pt: int,
    pl: int,
    v: np.ndarray | None,
    y: np.ndarray,
    algorithm: Algorithm = F2X2,
) -> np.ndarray:
    """``conv3x3(x, w) + b`` (stride 1) by Winograd ``algorithm``, every output.

    Parameters
    ----------
    x, w, b, pt, pl : as for :func:`conv3x3_pool_forward`.
    v : (points, N * tiles_h * tiles_w, C) buffer for the transformed input
        (``algorithm.points``, ``algorithm.tiles(ho, wo)``), kept for backward, or
        None.
    y : (N, ho, wo, F) output buffer, fully overwritten. F(2x2, 3x3) needs even
        ``ho`` and ``wo``; F(4x4, 3x3) and F(6x6, 3x3) take any, their last tiles
        partial.

    Returns
    -------
    y
    """
    b = np.zeros(w.shape[3], x.dtype) if b is None else b.astype(x.dtype, copy=False)

    def epilogue(m: np.ndarray, s: int, e: int) -> None:
        algorithm.output_transform(m, b, y[s:e])

    tiles_h, tiles_w = algorithm.tiles(y.shape[1], y.shape[2])
    forward_chunks(x, w, pt, pl, tiles_h, tiles_w, v, epilogue, algorithm)
    return y


def backward_chunks(
    n: int,
    tiles_h: int,
    tiles_w: int,
    output_adjoint: Callable[[np.ndarray, int, int, np.ndarray], object],
    v: np.ndarray | None,
    x: np.ndarray | None,
    w: np.ndarray,
    pt: int,
    pl: int,
    x_shape: tuple[int, int, int, int],
    need_dx: bool,
    dtype: np.dtype,
    algorithm: Algorithm = F2X2,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The adjoint of :func:`forward_chunks`, chunk by chunk as it runs:
    ``output_adjoint(dm, s, e, db)`` writes ``dM`` of images ``[s, e)`` and adds
    their bias gradient to ``db``. ``V`` is read from ``v``, or, when ``v`` is None,
    transformed again from the input ``x`` chunk by chunk. Returns ``(dx, dw, db)``."""
    c, f = w.shape[2], w.shape[3]
    tiles = tiles_h * tiles_w
    points = algorithm.points
    # Contiguous: OpenBLAS took 1.35x as long for dV with a transposed view of U
    # (shipped CNN conv2, 1 thread: 7.4 -> 5.5 ms per batch of 128). U^T is the
    # transform of w with its channel axes swapped: transposing w, 9 C F floats,
    # beats transposing U, up to 36 C F.
    u_t = algorithm.kernel_transform(np.ascontiguousarray(w.transpose(0, 1, 3, 2)))
    dx = np.empty(x_shape, dtype=dtype) if need_dx else None

    chunks = batch_chunks(n, points * tiles * max(c, f) * dtype.itemsize)
    largest = max(e - s for s, e in chunks)
    # Per chunk, added up in chunk order as they finish: the sums do not depend on
    # which thread ran which chunk.
    du_chunks = np.empty((len(chunks), points, c, f), dtype=dtype)
    db_chunks = np.zeros((len(chunks), f), dtype=dtype)
    sums = InOrderSums(du_chunks, db_chunks)

    def work(claimed: Iterator[int]) -> None:
        size = points * largest * tiles
        dm_own = np.empty(size * f, dtype=dtype)
        dv_own = np.empty(size * c if need_dx else 0, dtype=dtype)
        v_own = np.empty(size * c if v is None else 0, dtype=dtype)
        for i in claimed:
            s, e = chunks[i]
            k = (e - s) * tiles
            dm = planes(dm_own, points, k, f)
            output_adjoint(dm, s, e, db_chunks[i])
            if v is not None:
                vc = v[:, s * tiles : e * tiles]
            elif x is not None:
                vc = algorithm.input_transform(
                    x[s:e], pt, pl, tiles_h, tiles_w, planes(v_own, points, k, c)
                )
            else:
                raise ValueError(
                    "Winograd backward needs the input x or its transform v"
                )
            products(vc.transpose(0, 2, 1), dm, du_chunks[i])
            sums.finished(i)
            if dx is not None:
                dv = planes(dv_own, points, k, c)
                products(dm, u_t, dv)
                algorithm.input_transform_adjoint(dv, pt, pl, tiles_h, tiles_w, dx[s:e])

    claim_chunks(work, len(chunks))
    du, db = sums.totals()
    dw = algorithm.kernel_transform_adjoint(du).astype(dtype, copy=False)
    return dx, dw, db


def conv3x3_pool_backward(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    v: np.ndarray,
    w: np.ndarray,
    pt: int,
    pl: int,
    x_shape: tuple[int, int, int, int],
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv3x3_pool_forward`.

    Parameters
    ----------
    dout : (N, P, Q, F) gradient of the pooled output; p, argmax : the forward's
        pooled output and winners; relu as in the forward pass.
    v : (16, N * P * Q, C) the transformed input the forward pass kept.
    w : (3, 3, C, F); pt, pl : as in the forward pass; x_shape : (N, H, W, C).
    need_dx : False skips the input gradient.

    Returns
    -------
    dx : (N, H, W, C) or None, dw : (3, 3, C, F), db : (F,)
    """
    dout = np.ascontiguousarray(dout)

    def output_adjoint(dm: np.ndarray, s: int, e: int, db: np.ndarray) -> None:
        output_transform_pool_adjoint(dout[s:e], p[s:e], argmax[s:e], relu, dm, db)

    n, po, qo, _ = dout.shape
    return backward_chunks(
        n, po, qo, output_adjoint, v, None, w, pt, pl, x_shape, need_dx, dout.dtype
    )


def conv3x3_backward(
    dy: np.ndarray,
    v: np.ndarray | None,
    w: np.ndarray,
    pt: int,
    pl: int,
    x_shape: tuple[int, int, int, int],
    need_dx: bool = True,
    x: np.ndarray | None = None,
    algorithm: Algorithm = F2X2,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv3x3_forward`: dy : (N, ho, wo, F) the gradient of its
    output, ``v`` the transformed input it kept, or None and ``x`` the input (then
    ``V`` is transformed again chunk by chunk, in cache), ``algorithm`` the
    forward's, the rest as for :func:`conv3x3_pool_backward`. Returns ``(dx or
    None, dw, db)``."""
    dy = np.ascontiguousarray(dy)

    def output_adjoint(dm: np.ndarray, s: int, e: int, db: np.ndarray) -> None:
        algorithm.output_transform_adjoint(dy[s:e], dm, db)

    n, ho, wo, _ = dy.shape
    tiles_h, tiles_w = algorithm.tiles(ho, wo)
    return backward_chunks(
        n, tiles_h, tiles_w, output_adjoint, v, x, w, pt, pl, x_shape, need_dx,
        dy.dtype, algorithm,
    )  # fmt: skip
