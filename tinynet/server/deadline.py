"""Socket reads that must finish by a deadline, however slowly the bytes come.

A socket timeout alone bounds the silence between two bytes, not the time a request
takes: a client sending one byte every few seconds (slowloris) would hold its
connection, and its thread, for ever. Reading through :class:`DeadlineReader`, each
phase of a request (its head, its body) must arrive whole before its deadline.

The reader also says how fast its client is sending, and can be cut off from another
thread: when every connection thread is taken, the server drops the slowest client
(a trickling one, or an idle kept-alive connection) to serve a new one.
"""

from __future__ import annotations

import contextlib
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
    ``head``: bytes already received from ``sock``, read first.

    Attributes
    ----------
    received : bytes read since the deadline was last set.
    waiting_since : ``time.monotonic()`` when the current wait for the client began
        (:meth:`set_deadline`), or None while the server works on the request.
    """

    def __init__(self, sock: socket.socket, head: bytes = b"") -> None:
        super().__init__()
        self._sock = sock
        self._head = head  # bytes already taken from the socket, read first
        self._deadline = math.inf
        self._dropped = False
        self.received = 0
        self.waiting_since: float | None = None

    def set_deadline(self, seconds: float) -> None:
        """Wait for the client: reads from now on must be done within ``seconds``."""
        now = time.monotonic()
        self._deadline = now + seconds
        self.waiting_since = now
        self.received = 0

    def rate(self, now: float) -> float | None:
        """Bytes per second received in the current wait, or None when not waiting
        (or waiting for less than a millisecond)."""
        since = self.waiting_since
        if since is None or now - since < 1e-3:
            return None
        return self.received / (now - since)

    def stop_waiting(self) -> None:
        """The client sent what was asked for; the server is working on it."""
        self.waiting_since = None

    def drop(self) -> None:
        """Cut the connection off (from any thread): a pending read ends at once
        with :class:`ConnectionAbortedError`."""
        self._dropped = True
        self.waiting_since = None
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            self.received += n
            return n
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout
        self._check_dropped()
        self._sock.settimeout(left)
        try:
            n = self._sock.recv_into(buffer)
        except TimeoutError:
            raise RequestTimeout from None
        self._check_dropped()
        self.received += n
        return n

    def _check_dropped(self) -> None:
        if self._dropped:
            raise ConnectionAbortedError("dropped as the slowest client, to make room")
