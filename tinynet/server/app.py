"""The server object and ``run`` (what ``tinynet serve`` calls)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from http.server import ThreadingHTTPServer
from importlib import resources
from typing import Any

from .. import __version__
from ..vision.loading import MAX_PIXELS
from .handler import STATIC, Handler
from .reader import DigitReader

MAX_UPLOAD_BYTES = 16 * 2**20
"""Default cap on a request body (a phone photo is 2-8 MB)."""
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
    quiet : no request log on stderr.
    """

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        model: Any,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_pixels: int = MAX_PIXELS,
        workers: int = 2,
        quiet: bool = False,
    ) -> None:
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.reader = DigitReader(model, max_pixels=max_pixels, workers=workers)
        self.max_upload_bytes = int(max_upload_bytes)
        self.quiet = quiet
        self.allowed_hosts = _LOOPBACK_NAMES if _is_loopback(host) else None
        web = resources.files("tinynet") / "web"
        self.static = {name: (web / name).read_bytes() for name, _ in STATIC.values()}
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

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
