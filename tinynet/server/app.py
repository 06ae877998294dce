"""The server object and ``run`` (what ``tinynet serve`` calls)."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from importlib import resources
from typing import Any

from .. import __version__
from ..vision.loading import MAX_PIXELS
from .deadline import DeadlineReader
from .handler import STATIC, Handler
from .reader import DigitReader

MAX_UPLOAD_BYTES = 16 * 2**20
"""Default cap on a request body (a phone photo is 2-8 MB)."""
# With every connection thread taken, a client that has been waiting to send for
# DROP_AFTER_SECONDS at under MIN_BYTES_PER_SECOND on average is dropped to make room.
# A browser sends a request head in milliseconds; a phone uploads at 100 KB/s or more.
DROP_AFTER_SECONDS = 2.0
MIN_BYTES_PER_SECOND = 16 * 1024
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class DigitServer(ThreadingHTTPServer):
    """An HTTP server reading digits with one model; see :mod:`tinynet.server`.

    Parameters
    ----------
    address : (host, port); port 0 picks a free port (see :attr:`url`).
    model : anything with ``predict`` and ``input_shape`` (a tinynet model).
    max_upload_bytes : cap on a request body (413 above it).
    max_pixels : cap on an image's pixel count (400 above it).
    workers : images decoded at the same time.
    max_connections : connections served at the same time, one thread each; more
        wait in the listen queue until one closes.
    head_timeout : seconds for a request's line and headers to arrive, and the
        longest an idle kept-alive connection is kept (408 when a request is late).
    body_timeout : seconds for a request's body to arrive (408 after).
    write_timeout : seconds for a client to take an answer before it is dropped.
    quiet : no request log on stderr.

    Notes
    -----
    With the deadlines, a client holds a connection for at most ``head_timeout +
    body_timeout`` seconds plus the time to read its image, however slowly it sends.
    When all ``max_connections`` threads are taken, a new connection does not wait
    for that: a client that has been sending slower than :data:`MIN_BYTES_PER_SECOND`
    for over :data:`DROP_AFTER_SECONDS` (a trickling one, or an idle kept-alive
    connection) is dropped to make room. So a flood of slow clients (slowloris)
    delays a good request by about ``DROP_AFTER_SECONDS``; only connections that are
    all busy (sending fast, or waiting for their image to be read) make new ones
    wait longer, in arrival order. Memory for bodies is bounded by
    ``max_connections * max_upload_bytes``.
    """

    daemon_threads = True
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
        head_timeout: float = 10.0,
        body_timeout: float = 60.0,
        write_timeout: float = 30.0,
        quiet: bool = False,
    ) -> None:
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
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
        self._connections = threading.BoundedSemaphore(max_connections)
        self._readers: set[DeadlineReader] = set()  # one per open connection
        self._readers_lock = threading.Lock()
        self.allowed_hosts = _LOOPBACK_NAMES if _is_loopback(host) else None
        web = resources.files("tinynet") / "web"
        self.static = {name: (web / name).read_bytes() for name, _ in STATIC.values()}
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def track(self, reader: DeadlineReader) -> None:
        """Called by each connection's handler: its reader, a candidate to drop."""
        with self._readers_lock:
            self._readers.add(reader)

    def untrack(self, reader: DeadlineReader) -> None:
        with self._readers_lock:
            self._readers.discard(reader)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the accept loop. With every thread taken, the slowest client makes
        # room once it qualifies; meanwhile new connections wait in the kernel's
        # listen queue, in arrival order.
        while not self._connections.acquire(timeout=0.25):
            self._drop_slowest_client()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def _drop_slowest_client(self) -> None:
        now = time.monotonic()
        with self._readers_lock:
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
