"""The request handler: routes, body reading with a cap, multipart, JSON answers."""

from __future__ import annotations

import json
import sys
import time
import traceback
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..vision import error_dict

if TYPE_CHECKING:
    from .app import DigitServer

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
_DRAIN_LIMIT = 256 * 2**20  # read (and drop) at most this much of a refused body
_DRAIN_SECONDS = 5.0


class HTTPProblem(Exception):
    """A request the server refuses: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


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
        file = _file_name(query)
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
            file = _file_name(parse_qs(urlsplit(self.path).query))
            message = self._too_large(int(length))
            self._send_json(413, error_dict(file, message), close=True)
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


def _file_name(query: dict[str, list[str]]) -> str:
    """The ``"file"`` of the answer: ``?file=NAME``, else ``"upload"``."""
    return (query.get("file") or ["upload"])[0][:255]


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["0"])[0].lower() in ("1", "true", "yes", "on")
