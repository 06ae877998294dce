"""The server object and ``run`` (what ``tinynet serve`` calls)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer
from importlib import resources
from typing import Any

from .. import __version__
from ..vision.loading import MAX_PIXELS
from .deadline import DeadlineReader
from .handler import STATIC, Handler
from .problem import error_bytes
from .reader import DigitReader
from .waiting import HeadWaiter

MAX_UPLOAD_BYTES = 16 * 2**20
"""Default cap on a request body (a phone photo is 2-8 MB)."""
# With every worker thread taken, a client that has been waiting to send for
# DROP_AFTER_SECONDS at under MIN_BYTES_PER_SECOND on average is dropped to make room.
# A browser sends a request head in milliseconds; a phone uploads at 100 KB/s or more.
DROP_AFTER_SECONDS = 2.0
MIN_BYTES_PER_SECOND = 16 * 1024
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class DigitServer(HTTPServer):
    """An HTTP server reading digits with one model; see :mod:`tinynet.server`.

    Parameters
    ----------
    address : (host, port); port 0 picks a free port (see :attr:`url`).
    model : anything with ``predict`` and ``input_shape`` (a tinynet model).
    max_upload_bytes : cap on a request body (413 above it).
    max_pixels : cap on an image's pixel count (400 above it).
    workers : images decoded at the same time.
    max_connections : requests served at the same time, one worker thread each.
    max_waiting : connections waiting for their head, and requests waiting for a
        worker, at most each (the oldest waiting connection is closed; a request
        with no room gets 503).
    head_timeout : seconds for a request's line and headers to arrive (408 after).
    body_timeout : seconds for a request's body to arrive (408 after).
    write_timeout : seconds for a client to take an answer before it is dropped.
    quiet : no request log on stderr.

    Notes
    -----
    A new connection costs no thread until its request head has arrived: one thread
    (:class:`~tinynet.server.waiting.HeadWaiter`) watches them all. So clients that
    trickle their heads (slowloris) cannot take the workers, and a good request is
    served as soon as its head arrives. A client that trickles its *body* does hold
    a worker, for at most ``body_timeout``; when every worker is taken and requests
    wait, one that has been sending slower than ``MIN_BYTES_PER_SECOND`` for over
    ``DROP_AFTER_SECONDS`` is dropped to make room. Memory for bodies is bounded by
    ``max_connections * max_upload_bytes``.
    """

    request_queue_size = 256
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        model: Any,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_pixels: int = MAX_PIXELS,
        workers: int = 2,
        max_connections: int = 32,
        max_waiting: int = 512,
        head_timeout: float = 10.0,
        body_timeout: float = 60.0,
        write_timeout: float = 30.0,
        quiet: bool = False,
    ) -> None:
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
        for name, count in {
            "max_connections": max_connections,
            "max_waiting": max_waiting,
        }.items():
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count}")
        timeouts = {"head": head_timeout, "body": body_timeout, "write": write_timeout}
        for name, seconds in timeouts.items():
            if not seconds > 0:
                raise ValueError(f"{name}_timeout must be > 0 seconds, got {seconds}")
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.reader = DigitReader(model, max_pixels=max_pixels, workers=workers)
        self.max_upload_bytes = int(max_upload_bytes)
        self.head_timeout = float(head_timeout)
        self.body_timeout = float(body_timeout)
        self.write_timeout = float(write_timeout)
        self.quiet = quiet
        self.allowed_hosts = _LOOPBACK_NAMES if _is_loopback(host) else None
        web = resources.files("tinynet") / "web"
        self.static = {name: (web / name).read_bytes() for name, _ in STATIC.values()}
        super().__init__(address, Handler)  # binds: may fail before any thread runs
        self._max_connections = max_connections
        self._max_waiting = max_waiting
        self._readers: set[DeadlineReader] = set()  # one per request being served
        self._lock = threading.Lock()  # guards _readers, _queued, _busy
        self._queued = self._busy = 0
        self._workers = ThreadPoolExecutor(max_connections, "tinynet-serve")
        self._heads = HeadWaiter(
            self._serve_later,
            timeout=self.head_timeout,
            max_waiting=max_waiting,
            on_tick=self._make_room,
        )
        threading.Thread(
            target=self._heads.run, name="tinynet-heads", daemon=True
        ).start()

    @property
    def url(self) -> str:
        # server_address, as server_bind set it: (host str, port, ...) for IPv4/6.
        host, port = self.socket.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the accept loop: never blocks, the connection waits for its head
        # without a thread.
        self._heads.add(request, client_address)

    def server_close(self) -> None:
        self._heads.close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        super().server_close()

    def track(self, reader: DeadlineReader) -> None:
        """Called by each request's handler: its reader, a candidate to drop."""
        with self._lock:
            self._readers.add(reader)

    def untrack(self, reader: DeadlineReader) -> None:
        with self._lock:
            self._readers.discard(reader)

    def _serve_later(self, sock: socket.socket, address: Any, head: bytes) -> None:
        """A request head has arrived: queue the request for a worker."""
        with self._lock:
            full = self._queued >= self._max_waiting
            self._queued += not full
        if full:
            with contextlib.suppress(OSError):
                sock.settimeout(0)
                sock.send(error_bytes(503, "the server is busy: try again shortly"))
            self.shutdown_request(sock)
            return
        self._workers.submit(self._serve, sock, address, head)
        self._make_room()

    def _serve(self, sock: socket.socket, address: Any, head: bytes) -> None:
        with self._lock:
            self._queued -= 1
            self._busy += 1
        try:
            Handler(sock, address, self, head=head)
        except Exception:
            self.handle_error(sock, address)
        finally:
            with self._lock:
                self._busy -= 1
            self.shutdown_request(sock)

    def _make_room(self) -> None:
        """With requests waiting for a worker and none free, drop the slowest
        client that qualifies (see the class notes)."""
        now = time.monotonic()
        with self._lock:
            if not (self._queued and self._busy >= self._max_connections):
                return
            slow = [
                (rate, reader)
                for reader in self._readers
                if (rate := reader.rate(now)) is not None
                and rate < MIN_BYTES_PER_SECOND
                and now - (reader.waiting_since or now) > DROP_AFTER_SECONDS
            ]
        if slow:
            min(slow, key=lambda pair: pair[0])[1].drop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished or stalled mid-answer is one log line; anything
        else is a bug, logged with its traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handle_error(request, client_address)
        elif not self.quiet:
            sys.stderr.write(f"tinynet serve: {client_address[0]}: dropped: {exc}\n")

    def info(self) -> dict[str, Any]:
        model = self.reader.model
        return {
            "model": getattr(model, "name", type(model).__name__),
            "input_shape": list(self.reader.input_shape),
            "max_upload_bytes": self.max_upload_bytes,
            "max_pixels": self.reader.max_pixels,
            "version": __version__,
        }


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(
    model: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    quiet: bool = False,
) -> None:
    """Serve until Ctrl+C, printing the address first."""
    server = DigitServer(
        (host, port), model, max_upload_bytes=max_upload_bytes, quiet=quiet
    )
    with server:
        print(f"tinynet: digit reader at {server.url}  (Ctrl+C to stop)", flush=True)
        if server.allowed_hosts is None:
            print(
                f"tinynet: warning: listening on {host}, reachable from other machines",
                file=sys.stderr,
                flush=True,
            )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("tinynet: stopped", flush=True)
