"""A dense layer's matrix products split by the batch (``tinynet.kernels.batch_split``).

Why not OpenBLAS's own threads? Their numbers depend on how many there are: on
one thread and on two, ``(128, 784) @ (784, 512)`` comes out up to 6e-5 apart
(OpenBLAS 0.3, AMD EPYC), so a plan that moved an MLP between widths on a busy
machine (``tinynet.plan.governor``) trained to different weights. Here each share
of the batch runs single-threaded BLAS and the weight gradient's partial sums are
added in share order; the shares depend on the batch size and the thread count
only, so the numbers are the same at either width (the caller runs every share
under :func:`tinynet.threads.on_calling_thread`).
"""

from __future__ import annotations

import numpy as np

from . import batch_split


def matmul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``, the rows of ``a`` in batch shares: a : (N, K), b : (K, M) ->
    (N, M)."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def share(start: int, stop: int) -> None:
        np.matmul(a[start:stop], b, out=out[start:stop])

    batch_split.run(share, a.shape[0])
    return out


def dense_backward(
    x: np.ndarray, dz: np.ndarray, w: np.ndarray, dw: np.ndarray, need_dx: bool
) -> np.ndarray | None:
    """The gradients of ``z = x @ w`` in batch shares.

    Parameters
    ----------
    x : (N, K) the input; dz : (N, M) the gradient of z; w : (K, M) the weights.
    dw : (K, M) written with ``x.T @ dz``: each share's partial sum, added in share
        order.
    need_dx : whether to return ``dz @ w.T``.

    Returns
    -------
    dx : (N, K), or None.
    """
    dx = np.empty(x.shape, dtype=np.result_type(dz, w)) if need_dx else None
    w_t = w.T

    def share(start: int, stop: int) -> np.ndarray:
        if dx is not None:
            np.matmul(dz[start:stop], w_t, out=dx[start:stop])
        partial: np.ndarray = x[start:stop].T @ dz[start:stop]
        return partial

    parts = batch_split.run(share, x.shape[0])
    dw[...] = parts[0]
    for part in parts[1:]:
        dw += part
    return dx


__all__ = ["dense_backward", "matmul_rows"]
