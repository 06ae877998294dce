"""A dense layer's matrix products split by the batch (``tinynet.kernels.batch_split``).

Why not OpenBLAS's own threads? Their numbers depend on how many there are: on
one thread and on two, ``(128, 784) @ (784, 512)`` comes out up to 6e-5 apart
(OpenBLAS 0.3, AMD EPYC), so a plan that moved an MLP between widths on a busy
machine (``tinynet.plan.governor``) trained to different weights. Here each share
runs single-threaded BLAS: rows of the batch for the outputs and input gradients,
columns for the weight gradient (each a product over the whole batch, so no
partial sums). The shares depend on the shapes and the thread count only, so the
numbers are the same at either width (under
:func:`tinynet.threads.on_calling_thread` the caller runs every share).
"""

from __future__ import annotations

import numpy as np

from . import batch_split

#: Products of fewer multiply-adds than this run on the calling thread, unsplit:
#: waking a pool thread costs more than it saves (the MNIST MLP's 512 -> 10 layer,
#: 655k, 2 threads: forward 0.06 ms unsplit, 0.24-0.34 ms split). Shapes decide,
#: never timing, so the numbers stay the same at either width.
MIN_SPLIT_WORK = 1 << 20


def _parts(n: int, work: int) -> int:
    """How many shares a product of ``work`` multiply-adds over ``n`` rows gets."""
    if work < MIN_SPLIT_WORK:
        return 1
    return len(batch_split.shares(n, batch_split.threads()))


def matmul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``, the rows of ``a`` in batch shares: a : (N, K), b : (K, M) ->
    (N, M)."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def share(start: int, stop: int) -> None:
        np.matmul(a[start:stop], b, out=out[start:stop])

    if _parts(a.shape[0], a.size * b.shape[1]) == 1:
        share(0, a.shape[0])
    else:
        batch_split.run(share, a.shape[0])
    return out


def dense_backward(
    x: np.ndarray, dz: np.ndarray, w: np.ndarray, dw: np.ndarray, need_dx: bool
) -> np.ndarray | None:
    """The gradients of ``z = x @ w``, in shares: the rows of ``dx`` and the columns
    of ``dw``, one of each per thread.

    Each column of ``dw`` is one product over the whole batch, so nothing is summed
    across threads (partial sums per batch share, added up after, cost 15% more
    time on one thread: an extra (K, M) array written and read per layer).

    Parameters
    ----------
    x : (N, K) the input; dz : (N, M) the gradient of z; w : (K, M) the weights.
    dw : (K, M) written with ``x.T @ dz``.
    need_dx : whether to return ``dz @ w.T``.

    Returns
    -------
    dx : (N, K), or None.
    """
    dx = np.empty(x.shape, dtype=np.result_type(dz, w)) if need_dx else None
    rows = batch_split.shares(x.shape[0], _parts(x.shape[0], dz.size * x.shape[1]))
    cols = batch_split.shares(dz.shape[1], len(rows))
    x_t, w_t = x.T, w.T

    def share(i: int, _: int) -> None:
        if dx is not None:
            start, stop = rows[i]
            np.matmul(dz[start:stop], w_t, out=dx[start:stop])
        if i < len(cols):
            start, stop = cols[i]
            np.matmul(x_t, dz[:, start:stop], out=dw[:, start:stop])

    if len(rows) == 1:
        share(0, 1)
    else:  # share i of range(len(rows)) is (i, i + 1)
        batch_split.run(share, len(rows))
    return dx


__all__ = ["dense_backward", "matmul_rows"]
