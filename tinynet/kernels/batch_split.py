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

The other threads are long-lived and each sleeps on a lock of its own between
splits; :func:`run` releases it to wake the thread, and waits for the shares the
other threads took, never for a thread to wake. A ``ThreadPoolExecutor`` waited
for every task it was given, even one whose thread woke late to find every share
taken: with that thread's core busy, the caller waited for it to be scheduled for
nothing. (With shares that do nothing, a split costs about the same either way:
18-32 us median, 35 us at the 90th percentile, on 2 cores at load average 6-7,
``benchmarks/split_overhead.py``.) A thread that polls for the next split for
0.1 ms before it sleeps (``os.sched_yield`` between tries, which lets go of the
GIL) wakes sooner, but takes the core from whatever else runs: with the machine
loaded (load average 5 on 2 cores) the speedrun step's median went from 23 to
30 ms, so threads sleep at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

import numba

from ..threads import calling_thread_only, single_threaded_blas

T = TypeVar("T")


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


class _Split(Generic[T]):
    """One call of :func:`run`: its shares, the next one to claim, and what each
    returned or raised."""

    def __init__(self, work: Callable[[int, int], T], parts: list[tuple[int, int]]):
        self.work = work
        self.parts = parts
        self.results: list[T | None] = [None] * len(parts)
        self.errors: list[BaseException | None] = [None] * len(parts)
        self._lock = threading.Lock()
        self._claimed = 0
        self._unfinished = len(parts)
        self._finished = threading.Lock()  # held until the last share ends
        self._finished.acquire()

    def take_shares(self) -> None:
        """Run shares in order, until none is left unclaimed."""
        while True:
            with self._lock:
                i = self._claimed
                self._claimed += 1
            if i >= len(self.parts):
                return
            try:
                self.results[i] = self.work(*self.parts[i])
            except BaseException as error:  # re-raised in the caller, by run()
                self.errors[i] = error
            with self._lock:
                self._unfinished -= 1
                last = self._unfinished == 0
            if last:
                self._finished.release()

    def wait(self) -> None:
        """Return once every share has ended."""
        self._finished.acquire()


class _Crew:
    """Threads that sleep until :meth:`start` hands them a split, take its shares
    with the caller, and sleep again.

    Each thread has a lock of its own, held while it has no wake-up pending. Only
    the thread that starts splits releases them (one split runs at a time), so
    ``locked()`` then ``release()`` is no race: a thread can only take the lock.
    A thread that wakes late finds the newest split, whose shares it joins or
    finds all taken.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._split: _Split[object] | None = None
        self._wake = [threading.Lock() for _ in range(size)]
        for i, wake in enumerate(self._wake):
            wake.acquire()
            threading.Thread(
                target=self._serve, args=(wake,), name=f"tinynet-{i}", daemon=True
            ).start()

    def _serve(self, wake: threading.Lock) -> None:
        while True:
            wake.acquire()
            split = self._split
            if split is None:  # retired
                return
            split.take_shares()

    def start(self, split: _Split[T] | None) -> None:
        """Wake every thread to take shares of ``split`` (None: to end)."""
        self._split = cast("_Split[object] | None", split)
        for wake in self._wake:
            if wake.locked():
                wake.release()


_LOCK = threading.Lock()  # one split at a time: they share the crew
_CREW: _Crew | None = None


def _forget_crew_in_child() -> None:
    """After a fork the child has none of the parent's threads (a crew that still
    believed it had them would never run the work): start afresh."""
    global _CREW, _LOCK
    _CREW, _LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_crew_in_child)


def run(work: Callable[[int, int], T], n: int) -> list[T]:
    """``[work(start, stop) for each share of range(n)]``, the shares in parallel.

    The shares are fixed by ``n`` and :func:`threads`, whichever thread runs them,
    so results are the same on a quiet machine and a busy one. The calling thread
    and the crew of long-lived threads take shares in order until none is left: a
    thread that has not woken up (its core is busy) when the caller is done with
    its first share leaves the next one to the caller. Inside
    :func:`tinynet.threads.on_calling_thread` the caller runs them all.

    ``work`` must release the GIL for the bulk of its time (NumPy matmuls and
    ``nogil`` Numba kernels do) and write only to its own share of any shared
    output. The BLAS runs single-threaded meanwhile. Every share ends before
    ``run`` returns; if any raised, the first share's error (in share order)
    propagates then.
    """
    parts = shares(n, threads())
    if len(parts) == 1:
        return [work(0, n)]
    if calling_thread_only():
        return [work(start, stop) for start, stop in parts]
    global _CREW
    split = _Split(work, parts)
    with _LOCK, single_threaded_blas():
        if _CREW is None or _CREW.size < len(parts) - 1:
            if _CREW is not None:
                _CREW.start(None)
            _CREW = _Crew(len(parts) - 1)
        _CREW.start(split)
        split.take_shares()
        split.wait()
    error = next((e for e in split.errors if e is not None), None)
    if error is not None:
        raise error
    return cast(list[T], split.results)
