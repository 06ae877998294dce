"""Run a block with the BLAS (NumPy's matrix products) on one thread, or all of
the block on the calling thread.

Two kinds of work want it:

- **Single-image work** (``tinynet predict``, ``tinynet serve``, the predict example):
  for such small products a second BLAS thread only adds wake-up latency, and on a
  busy machine it collapses: a one-image predict of the shipped CNN took 0.9 ms with
  one OpenBLAS thread and 58 ms with two while another process held a core.
- **Layers that split the batch over threads themselves**: each share's matmul then
  runs on the thread that called it (see :mod:`tinynet.kernels.batch_split`).

The limit is set through threadpoolctl, so it works after NumPy is loaded (the
environment variables only count when the BLAS starts) and is undone on exit. A
block inside another of the same thread (a plan's step around each of its batch
splits) leaves the limit to the outer one: it costs a thread-local read, not two
calls into the BLAS (5-7 us).

A third kind runs everything on one thread: a plan whose other threads would wait
for a core another process holds (:mod:`tinynet.plan.governor` decides when).
:func:`on_calling_thread` limits the BLAS and makes the batch splits run their
shares one after the other on the caller: the same shares, summed in the same
order, so the numbers do not change.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables by which a user chooses the BLAS thread count."""

_controllers: list[Any] | None = None  # threadpoolctl's BLAS controllers, found once
_calling_thread = threading.local()  # .only: inside on_calling_thread() in this thread
_blas_limited = threading.local()  # .depth: single_threaded_blas() blocks open here


def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's at least);
    looked up once (about 10 ms), then setting a limit costs about 1 us."""
    global _controllers
    if _controllers is None:
        from threadpoolctl import ThreadpoolController

        _controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    return _controllers


def blas_threads() -> int:
    """How many threads the BLAS uses now (the most, if several are loaded)."""
    return max((lib.get_num_threads() for lib in _blas_libraries()), default=1)


@contextlib.contextmanager
def single_threaded_blas(*, unless_user_chose: bool = False) -> Iterator[None]:
    """Limit the BLAS to one thread inside the block, and restore it after.

    Parameters
    ----------
    unless_user_chose : bool
        Leave the BLAS alone when one of :data:`USER_SETTINGS` is set: for commands,
        where the user's explicit choice wins. The batch split limits it whatever
        the setting, as its shares already keep every core busy.
    """
    if unless_user_chose and any(os.environ.get(v) for v in USER_SETTINGS):
        yield
        return
    depth = getattr(_blas_limited, "depth", 0)
    libs = [] if depth else [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
    for lib, before in libs:
        if before != 1:
            lib.set_num_threads(1)
    _blas_limited.depth = depth + 1
    try:
        yield
    finally:
        _blas_limited.depth = depth
        for lib, before in libs:
            if before != 1:
                lib.set_num_threads(before)


def calling_thread_only() -> bool:
    """Whether the calling thread is inside :func:`on_calling_thread` (the batch
    splits then hand no share to other threads)."""
    return bool(getattr(_calling_thread, "only", False))


@contextlib.contextmanager
def on_calling_thread() -> Iterator[None]:
    """Run the block on the calling thread alone: the BLAS on one thread, and every
    batch split's shares one after another (:mod:`tinynet.kernels.batch_split`)."""
    before = calling_thread_only()
    _calling_thread.only = True
    try:
        with single_threaded_blas():
            yield
    finally:
        _calling_thread.only = before
