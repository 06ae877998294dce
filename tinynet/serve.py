"""``tinynet serve``: a local web page and JSON API for trying the digit reader.

Standard library only (:mod:`http.server`, one thread per connection). Endpoints:

``GET /``
    The page (``tinynet/web/``): a drawing canvas and an upload / drop box.
``GET /api/info``
    ``{"model", "input_shape", "max_upload_bytes", "max_pixels", "version"}``.
``POST /api/predict``
    Body: the image file itself, or ``multipart/form-data`` with the file in the
    field ``image``. Answer: the object one ``examples/mnist_predict.py --json`` line
    holds (``file, digits, confidence, probabilities, top3, error``), made by the same
    :func:`tinynet.vision.read_digits`. Query options: ``file=NAME`` (the ``"file"``
    value for a raw body), ``single=1`` (all the ink is one digit), ``inputs=1`` (add
    ``"inputs"``, the 28x28 images the network saw as PNG data URLs, and ``"boxes"``,
    each digit's ``[x, y, w, h]`` in the uploaded image's pixels).

Status codes: 200 read; 400 not an image, an image with too many pixels, or a
malformed request; 411 no length; 413 body over the cap; 422 an image with no digit
in it; 500 an internal error (the server keeps running). Errors carry the same
object with ``"error"`` set to a one-line message.

Safety: binds to 127.0.0.1 unless told otherwise, and then answers only requests
whose ``Host`` is a loopback name (so a web page cannot reach it through DNS
rebinding); uploads are kept in memory only and capped; at most ``workers`` images
are decoded at once (bounding memory under many concurrent uploads) and model calls
are serialised (the Numba kernels' thread pool must not be entered concurrently).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import sys
import threading
import time
import traceback
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from . import __version__
from .vision import ImageError, error_dict, read_digits
from .vision.loading import MAX_PIXELS, load_image_scaled
from .vision.normalize import WORK_MAX_SIDE

MAX_UPLOAD_BYTES = 16 * 2**20
"""Default cap on a request body (a phone photo is 2-8 MB)."""

STATIC = {  # URL path -> (file in tinynet/web/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_DRAIN_LIMIT = 256 * 2**20  # read (and drop) at most this much of a refused body
_DRAIN_SECONDS = 5.0


class HTTPProblem(Exception):
    """A request the server refuses: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class DigitReader:
    """Thread-safe reading of uploaded images with one model.

    Decoding and preprocessing run in parallel, at most ``workers`` at a time; the
    model's ``predict`` runs under a lock. Passed to :func:`read_digits` as the model
    (it has ``input_shape`` and ``predict``).
    """

    def __init__(self, model: Any, *, max_pixels: int = MAX_PIXELS, workers: int = 2):
        if workers < 1:
            raise ValueError(f"DigitReader: workers must be >= 1, got {workers}")
        self.model = model
        self.max_pixels = int(max_pixels)
        self._predict_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(workers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape)

    def predict(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        with self._predict_lock:
            return self.model.predict(x, batch_size=batch_size)

    def read(
        self, data: bytes, file: str, *, single: bool = False, details: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """Read the image in ``data``: ``(HTTP status, JSON object)``."""
        with self._slots:
            try:
                image, scale = load_image_scaled(
                    data, max_pixels=self.max_pixels, max_side=WORK_MAX_SIDE
                )
            except ImageError as exc:
                return 400, error_dict(file, _message(exc, file))
            except cv2.error:
                message = f"{file}: OpenCV could not decode the image"
                return 400, error_dict(file, message)
            try:
                reading = read_digits(image, self, multi=not single)
            except ImageError as exc:  # decoded fine, but no digit in it
                return 422, error_dict(file, _message(exc, file))
        out = reading.to_dict(file)
        if details:
            out["inputs"] = [_png_data_url(x) for x in reading.inputs]
            out["boxes"] = [[round(v * scale) for v in box] for box in reading.boxes]
        return 200, out


def _message(exc: Exception, file: str) -> str:
    """First line of the error, naming the upload instead of ``<bytes>``/``<array>``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for placeholder in ("<bytes>", "<array>"):
        if text.startswith(placeholder):
            return file + text[len(placeholder) :]
    return text


def _png_data_url(x: np.ndarray) -> str:
    """(28, 28) float in [0, 1] -> ``data:image/png;base64,...``, ink white on black."""
    pixels = np.clip(np.asarray(x, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - encoding a small uint8 array does not fail
        raise RuntimeError("could not encode the network input as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def parse_multipart(
    body: bytes, content_type: str, field: str = "image"
) -> tuple[bytes, str | None]:
    """The content and file name of form field ``field`` in a multipart body."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise HTTPProblem(400, "multipart/form-data request without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):  # closing delimiter
            break
        head, sep, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise HTTPProblem(400, "malformed multipart/form-data body")
        disposition = Message()
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() == "content-disposition":
                disposition["content-disposition"] = value.strip()
        if disposition.get_param("name", header="content-disposition") == field:
            filename = disposition.get_filename()
            return content.removesuffix(b"\r\n"), filename
    raise HTTPProblem(400, f'multipart/form-data body has no field "{field}"')


class Handler(BaseHTTPRequestHandler):
    """Routes requests of a :class:`DigitServer`."""

    server: DigitServer
    protocol_version = "HTTP/1.1"
    server_version = f"tinynet/{__version__}"
    timeout = 30  # seconds of silence before a connection is dropped

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(200, self.server.static[name], ctype)
        elif path == "/api/info":
            self._send_json(200, self.server.info())
        elif path == "/api/predict":
            self._send_json(
                405, {"error": "use POST with the image as the body"}, allow="POST"
            )
        else:
            self._send_json(404, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        if url.path != "/api/predict":
            self._send_json(404, {"error": f"no such endpoint: {url.path}"})
            return
        query = parse_qs(url.query)
        file = (query.get("file") or ["upload"])[0][:255]
        try:
            body = self._read_body()
            ctype = self.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/form-data"):
                body, filename = parse_multipart(body, ctype)
                file = (filename or file)[:255]
            if not body:
                raise HTTPProblem(400, "empty upload: send the image file as the body")
            status, out = self.server.reader.read(
                body,
                file,
                single=_flag(query, "single"),
                details=_flag(query, "inputs"),
            )
        except HTTPProblem as exc:
            self._send_json(exc.status, error_dict(file, str(exc)), close=exc.close)
            if exc.status == 413:
                self._drain()
            return
        except Exception:  # keep serving; the traceback goes to the server's log
            # Always logged, even when quiet: this is a bug to report.
            sys.stderr.write(
                f"tinynet serve: error reading an upload:\n{traceback.format_exc()}"
            )
            message = "internal error while reading the image"
            status, out = 500, error_dict(file, message)
        self._send_json(status, out)

    def handle_expect_100(self) -> bool:
        # Refuse an announced oversized upload before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.max_upload_bytes:
            self.close_connection = True
            self._send_json(413, {"error": self._too_large(int(length))}, close=True)
            return False
        return super().handle_expect_100()

    # ----------------------------------------------------------------- helpers
    def _host_ok(self) -> bool:
        allowed = self.server.allowed_hosts
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if allowed is None or name in allowed:
            return True
        self._send_json(403, {"error": f"host {host!r} not allowed (local server)"})
        return False

    def _too_large(self, n: int) -> str:
        cap = self.server.max_upload_bytes
        return (
            f"upload too large: {n / 2**20:.1f} MB, the limit is {cap / 2**20:g} MB"
            " (downscale the image or raise --max-upload-mb)"
        )

    def _read_body(self) -> bytes:
        """The request body, at most ``max_upload_bytes`` of it (else 413)."""
        cap = self.server.max_upload_bytes
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding:
            if encoding != "chunked":
                message = f"unsupported Transfer-Encoding {encoding!r}"
                raise HTTPProblem(501, message, close=True)
            return self._read_chunked(cap)
        length = self.headers.get("Content-Length")
        if length is None:
            raise HTTPProblem(411, "the request needs a Content-Length", close=True)
        if not length.strip().isdigit():
            raise HTTPProblem(400, f"bad Content-Length {length!r}", close=True)
        n = int(length)
        if n > cap:
            self._unread = n
            raise HTTPProblem(413, self._too_large(n), close=True)
        data = self.rfile.read(n)
        if len(data) < n:
            raise HTTPProblem(400, "the upload was cut short", close=True)
        return data

    def _read_chunked(self, cap: int) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HTTPProblem(400, "malformed chunked body", close=True) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > cap:
                raise HTTPProblem(413, self._too_large(total), close=True)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise HTTPProblem(400, "the upload was cut short", close=True)
            parts.append(chunk)
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _drain(self) -> None:
        """Read and drop the rest of a refused body, so the client gets to read the
        413 instead of a connection reset (bounded in bytes and time)."""
        left = min(getattr(self, "_unread", _DRAIN_LIMIT), _DRAIN_LIMIT)
        deadline = time.monotonic() + _DRAIN_SECONDS
        try:
            self.connection.settimeout(1.0)
            while left > 0 and time.monotonic() < deadline:
                got = self.rfile.read1(min(left, 1 << 16))
                if not got:
                    break
                left -= len(got)
        except OSError:
            pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        *,
        close: bool = False,
        allow: str | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", _CSP)
        if allow:
            self.send_header("Allow", allow)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, **kwargs: Any) -> None:
        body = json.dumps(obj).encode("utf-8")
        self._send(status, body, "application/json", **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.server.quiet:
            super().log_message(format, *args)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["0"])[0].lower() in ("1", "true", "yes", "on")


class DigitServer(ThreadingHTTPServer):
    """An HTTP server reading digits with one model; see the module docstring.

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
