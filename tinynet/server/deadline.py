"""Socket reads that must finish by a deadline, however slowly the bytes come.

A socket timeout alone bounds the silence between two bytes, not the time a request
takes: a client sending one byte every few seconds (slowloris) would hold its
connection, and its thread, for ever. Reading through :class:`DeadlineReader`, each
phase of a request (its head, its body) must arrive whole before its deadline.
"""

from __future__ import annotations

import io
import math
import socket
import time


class RequestTimeout(Exception):
    """The request did not arrive before its deadline.

    Deliberately not a ``TimeoutError``: :mod:`http.server` catches those itself and
    drops the connection without an answer.
    """


class DeadlineReader(io.RawIOBase):
    """Raw reads from ``sock`` that raise :class:`RequestTimeout` past the deadline.

    Wrap it in :class:`io.BufferedReader` to use it as a handler's ``rfile``.
    ``received`` counts the bytes read since the deadline was last set.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = math.inf
        self.received = 0

    def set_deadline(self, seconds: float) -> None:
        """Reads from now on must be done within ``seconds``."""
        self._deadline = time.monotonic() + seconds
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout
        self._sock.settimeout(left)
        try:
            n = self._sock.recv_into(buffer)
        except TimeoutError:
            raise RequestTimeout from None
        self.received += n
        return n
