"""Data parallelism over the batch: one share of the images per thread.

The convolution drivers (``tinynet.kernels.conv``) split a batch into one share per
thread, and each thread runs the whole pipeline for its share (im2col, a
single-threaded BLAS matmul, the epilogue; backward likewise) with serial Numba
kernels, in chunks of images that stay in its core's cache.

Why not threads inside each kernel (``prange``) and inside each matmul (OpenBLAS)?
On the 2-core KVM machines this project runs on, handing work to a sleeping thread
costs 80-160 us (a parallel Numba launch, workqueue layer: 150 us; OpenMP with a
passive wait policy: 85 us; measured with an empty ``prange`` loop), and a training
step of the classic convnet made 13 such launches plus a BLAS hand-off per matmul.
Split by the batch, a conv layer wakes the other thread once per call: the classic
convnet's training step at batch 128, 2 threads, took 29.8 ms (median) with
threads inside each kernel and 20.4 ms split by the batch (both without the
plan's ConvPool step).

The BLAS is limited to one thread while the shares run (each matmul then runs on the
thread that called it), and restored afterwards. A plan with steps that split the
batch runs its whole step so (``tinynet.plan``, with
:func:`tinynet.threads.single_threaded_blas`): OpenBLAS's threads spin for up to
~0.1 s after a multi-threaded call, so even one small multi-threaded matmul between
two splits (the convnet's Dense layer) left a spinning thread on the core the split
needed (classic convnet, 2 threads: 35.7 -> 19.6 ms per training step, median of
60). Dense layers split too (``tinynet.kernels.dense``). The split is fixed by the
batch size and the thread count, so results are reproducible for a given thread
count; which thread runs which share is not (see :func:`run`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar, cast

import numba

from ..threads import calling_thread_only, single_threaded_blas

T = TypeVar("T")

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _forget_pool_in_child() -> None:
    """After a fork the child has none of the parent's pool threads (a pool that
    still believed it had them would never run the work): start afresh."""
    global _POOL, _POOL_SIZE, _LOCK
    _POOL, _POOL_SIZE, _LOCK = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def threads() -> int:
    """How many threads the kernels use: Numba's setting (``NUMBA_NUM_THREADS``,
    or ``numba.set_num_threads`` in the calling thread)."""
    return numba.get_num_threads()


def shares(n: int, parts: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into at most ``parts`` contiguous, non-empty, near-equal
    ranges ``(start, stop)``."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def run(work: Callable[[int, int], T], n: int) -> list[T]:
    """``[work(start, stop) for each share of range(n)]``, the shares in parallel.

    The shares are fixed by ``n`` and :func:`threads`, whichever thread runs them,
    so results are the same on a quiet machine and a busy one. The calling thread
    and a pool of long-lived threads take shares in order until none is left: a
    pool thread that has not woken up (its core is busy) when the caller is done
    with its first share leaves the next one to the caller. Inside
    :func:`tinynet.threads.on_calling_thread` the caller runs them all.

    ``work`` must release the GIL for the bulk of its time (NumPy matmuls and
    ``nogil`` Numba kernels do) and write only to its own share of any shared
    output. The BLAS runs single-threaded meanwhile.
    """
    parts = shares(n, threads())
    if len(parts) == 1:
        return [work(0, n)]
    if calling_thread_only():
        return [work(start, stop) for start, stop in parts]
    global _POOL, _POOL_SIZE
    with _LOCK, single_threaded_blas():  # one split at a time: they share the pool
        if _POOL is None or _POOL_SIZE < len(parts) - 1:
            if _POOL is not None:
                _POOL.shutdown()
            _POOL_SIZE = len(parts) - 1
            _POOL = ThreadPoolExecutor(_POOL_SIZE, thread_name_prefix="tinynet")
        results: list[T | None] = [None] * len(parts)
        unclaimed = iter(range(len(parts)))
        claim_lock = threading.Lock()

        def take_shares() -> None:
            while True:
                with claim_lock:
                    i = next(unclaimed, None)
                if i is None:
                    return
                results[i] = work(*parts[i])

        futures = [_POOL.submit(take_shares) for _ in parts[1:]]
        try:
            take_shares()
        finally:
            # Every share finishes before the BLAS setting comes back, even when one
            # failed; then the first failure propagates.
            wait(futures)
        for future in futures:
            future.result()
        return cast(list[T], results)
