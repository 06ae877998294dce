"""Scratch arrays per thread, kept between calls, for work a batch split runs chunk
by chunk (``tinynet.kernels.batch_split``, ``conv.claim_chunks``).

Each thread writes its chunk's intermediates (a Winograd chunk's transformed input
and matrix products, a composite step's ``dz``) into the same memory chunk after
chunk, which stays in its core's cache, instead of into its part of a whole-batch
array that goes out to memory and back. Kept from one call to the next, by whoever
owns the object (a plan step): memory allocated afresh on every call, on a thread
other than the main one, is handed back to the system when freed (glibc trims a
thread's arena) and faulted in again, page by page, on the next call. Shipped CNN,
training step of 128 images, 2 threads (``resource.getrusage``): 711 page faults
and 2.4 ms of system time a step with the Winograd drivers' scratch allocated per
call, against 8 page faults on 1 thread, where the main thread's freed memory is
reused.
"""

from __future__ import annotations

import math
import threading

import numpy as np


class ThreadScratch:
    """Named scratch arrays, one set per thread (contents undefined on each
    :meth:`get`; nothing returned to a user may live in them)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[int, str], np.ndarray] = {}

    def get(
        self, shape: tuple[int, ...], dtype: np.dtype, name: str = ""
    ) -> np.ndarray:
        """The calling thread's C-contiguous array ``name``, of ``shape`` and
        ``dtype``: a view of the start of a flat buffer, reallocated only when it
        is too small or of another dtype. A thread must not ask for the same
        ``name`` again while it still uses the array."""
        size = math.prod(shape)
        key = (threading.get_ident(), name)
        array = self._arrays.get(key)
        if array is None or array.size < size or array.dtype != dtype:
            # Each thread writes only its own keys; one dict assignment is atomic.
            array = self._arrays[key] = np.empty(size, dtype=dtype)
        return array[:size].reshape(shape)

    def clear(self) -> None:
        """Drop every thread's arrays."""
        self._arrays.clear()


__all__ = ["ThreadScratch"]
