"""Connections waiting for their request head, all watched by one thread.

A thread per connection from the moment it is accepted lets slow clients
(slowloris: a request head sent a byte at a time) take every thread, and bounding
the threads then only makes good requests queue behind them. So a new connection
costs no thread until its head has arrived: one thread watches every waiting socket
(:mod:`selectors`), gathers the bytes, and hands each complete head to the server's
worker threads. A head late past its deadline gets a 408 and the connection closed;
past ``max_waiting`` connections, the one that has waited longest is closed.
"""

from __future__ import annotations

import collections
import contextlib
import selectors
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .problem import error_bytes

MAX_HEAD_BYTES = 64 * 1024
"""Gathered at most per connection (browsers send 1-2 kB); a longer head is handed
over as it is, and the handler reads the rest (under its own deadline)."""


@dataclass
class _Waiting:
    sock: socket.socket
    address: tuple[Any, ...]
    since: float
    head: bytearray = field(default_factory=bytearray)


class HeadWaiter:
    """Gathers request heads without a thread per connection.

    Parameters
    ----------
    on_head : called as ``on_head(sock, address, head_bytes)`` from the watching
        thread when a head is complete (or the client stopped sending); ``sock``
        is blocking again and now belongs to the callee.
    timeout : seconds a connection may take to send its head.
    max_waiting : connections waiting at most; a new one closes the oldest.
    on_tick : called about every 0.25 s from the watching thread.
    """

    def __init__(
        self,
        on_head: Callable[[socket.socket, tuple[Any, ...], bytes], None],
        *,
        timeout: float,
        max_waiting: int,
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_head = on_head
        self._timeout = timeout
        self._max_waiting = max_waiting
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # full means a wake-up is pending anyway
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._new: collections.deque[_Waiting] = collections.deque()
        self._waiting: dict[socket.socket, _Waiting] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._on_tick = on_tick

    def add(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        """Watch a new connection (any thread)."""
        with self._lock:
            self._new.append(_Waiting(sock, address, time.monotonic()))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def run(self) -> None:
        """The watching loop, until :meth:`close`; then closes what still waits."""
        while not self._closed:
            try:
                for key, _ in self._selector.select(timeout=0.25):
                    if key.fileobj is self._wake_r:
                        self._take_new()
                    # Unless _take_new closed it to make room in this same round:
                    elif (
                        isinstance(key.fileobj, socket.socket)
                        and (waiting := self._waiting.get(key.fileobj)) is not None
                        and waiting is key.data
                    ):
                        self._read(waiting)
                self._expire()
                self._on_tick()
            except Exception:  # a bug: say so, and keep serving
                traceback.print_exc()
        self._take_new()
        for waiting in list(self._waiting.values()):
            self._close(waiting)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def close(self) -> None:
        """Ask the watching loop to stop (any thread)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # ------------------------------------------------------------------ inside
    def _take_new(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._lock:
            new, self._new = list(self._new), collections.deque()
        for waiting in new:
            if len(self._waiting) >= self._max_waiting:
                self._close(min(self._waiting.values(), key=lambda w: w.since))
            waiting.sock.setblocking(False)
            self._waiting[waiting.sock] = waiting
            self._selector.register(waiting.sock, selectors.EVENT_READ, waiting)

    def _read(self, waiting: _Waiting) -> None:
        try:
            data = waiting.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._close(waiting)
            return
        if not data and not waiting.head:  # closed without a word
            self._close(waiting)
            return
        waiting.head += data
        head = waiting.head
        # A client that stopped sending (data == b"") is handed over too: the
        # handler answers what it did send (a 400, most likely).
        complete = b"\r\n\r\n" in head or b"\n\n" in head
        if not data or complete or len(head) > MAX_HEAD_BYTES:
            self._forget(waiting)
            waiting.sock.setblocking(True)
            self._on_head(waiting.sock, waiting.address, bytes(head))

    def _expire(self) -> None:
        deadline = time.monotonic() - self._timeout
        for waiting in [w for w in self._waiting.values() if w.since < deadline]:
            if waiting.head:  # a request began and did not finish: say why
                with contextlib.suppress(OSError):
                    message = f"the request took longer than {self._timeout:g} s"
                    waiting.sock.send(error_bytes(408, message + " to arrive"))
            self._close(waiting)

    def _forget(self, waiting: _Waiting) -> None:
        self._selector.unregister(waiting.sock)
        del self._waiting[waiting.sock]

    def _close(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        with contextlib.suppress(OSError):
            waiting.sock.close()
