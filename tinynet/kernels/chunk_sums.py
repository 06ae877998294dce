"""Per-chunk partial sums added up in chunk order while the chunks still run.

A batch split that runs chunks on whichever thread claims them
(``conv.claim_chunks``) writes each chunk's partial sums (a weight gradient, say)
to a slot of its own, and adds the slots up in chunk order, so the total is the
same bits whichever thread ran which chunk. Added after the split, that sum ran on
the calling thread alone: ~0.65 ms of a 52 ms training step of the shipped CNN
(2 threads; its three Winograd blocks' 4-16 chunks of up to 590 KB each). Here the
thread that finishes the next chunk in order adds it, and every finished chunk
after it, while the other threads still run theirs; the additions are the same,
``((p0 + p1) + p2) + ...``, in the same order, as ``functools.reduce(np.add,
parts)``.
"""

from __future__ import annotations

import threading

import numpy as np


class InOrderSums:
    """The running totals of ``parts``: arrays ``(count, ...)``, one slot per chunk.

    Call :meth:`finished` once per chunk after its slots are written; once every
    chunk has finished, :meth:`totals` returns ``parts[0]`` of each, which holds
    the sum over the chunks (the slots of chunk 0 are the accumulators).
    """

    def __init__(self, *parts: np.ndarray) -> None:
        self.parts = parts
        self.count = len(parts[0])
        self._lock = threading.Lock()
        self._done = [False] * self.count
        self._added = 1  # chunks in the totals so far: chunk 0 is their start
        self._adding = False  # a thread is adding; the others leave it to it

    def finished(self, chunk: int) -> None:
        """Record that ``chunk``'s slots are written, and add every chunk that is
        next in order and finished, unless another thread is at it (it will add
        this one too: it checks for the next chunk under the lock it was marked
        under)."""
        with self._lock:
            self._done[chunk] = True
            if self._adding:
                return
            self._adding = True
        while True:
            with self._lock:
                i = self._added
                if i == self.count or not self._done[i] or not self._done[0]:
                    self._adding = False
                    return
                self._added += 1
            for part in self.parts:
                part[0] += part[i]

    def totals(self) -> tuple[np.ndarray, ...]:
        """The sums over every chunk, one per ``parts`` array."""
        if self._added != self.count or not all(self._done):
            raise RuntimeError("InOrderSums.totals: some chunks have not finished")
        return tuple(part[0] for part in self.parts)


__all__ = ["InOrderSums"]
