"""The request handler: routes, deadlines, multipart, JSON answers."""

from __future__ import annotations

import io
import json
import sys
import traceback
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..vision import error_dict
from .body import announced_length, read_body
from .deadline import DeadlineReader, RequestTimeout
from .guard import refusal
from .problem import HTTPProblem

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
    """Answers the one request of a connection of a :class:`DigitServer`.

    The server hands over a connection once its request head has arrived (``head``,
    the bytes read so far). Every further read goes through a
    :class:`DeadlineReader`: the rest of the head, if any, must arrive within
    ``server.head_timeout`` seconds, the body within ``server.body_timeout``; a
    late client gets 408. Writes time out after ``server.write_timeout``. Every
    answer closes the connection: keeping it open would hold a thread while the
    client is idle, and a new loopback connection costs a fraction of a millisecond.
    """

    server: DigitServer
    protocol_version = "HTTP/1.1"
    server_version = f"tinynet/{__version__}"
    error_content_type = "application/json"

    def __init__(
        self,
        request: Any,
        client_address: Any,
        server: DigitServer,
        *,
        head: bytes = b"",
    ) -> None:
        self.head = head
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        self.deadline = DeadlineReader(self.connection, self.head)
        self.rfile = io.BufferedReader(self.deadline)
        self.server.track(self.deadline)

    def handle(self) -> None:
        self.handle_one_request()

    def finish(self) -> None:
        self.server.untrack(self.deadline)
        super().finish()

    def handle_one_request(self) -> None:
        self.deadline.set_deadline(self.server.head_timeout)
        # What an answer before the request line is parsed (a 408) needs.
        self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
        try:
            super().handle_one_request()
        except RequestTimeout:
            if self.deadline.received:  # a request started but did not finish
                message = (
                    f"the request took longer than {self.server.head_timeout:g} s "
                    "to arrive"
                )
                self._send_json(408, {"error": message})

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self.deadline.stop_waiting()
        return ok

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._allowed():
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
        if not self._allowed():
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
            if status >= 500:  # the model is broken: say so even when quiet
                sys.stderr.write(f"tinynet serve: {out['error']}\n")
        except HTTPProblem as exc:
            self._send_json(exc.status, error_dict(file, str(exc)))
            if exc.status == 413:
                self._drain()
            return
        except OSError:  # the connection failed or was dropped: no one to answer
            raise
        except Exception:  # keep serving; the traceback goes to the server's log
            # Always logged, even when quiet: this is a bug to report.
            sys.stderr.write(
                f"tinynet serve: error reading an upload:\n{traceback.format_exc()}"
            )
            message = "internal error while reading the image"
            status, out = 500, error_dict(file, message)
        self._send_json(status, out)

    def handle_expect_100(self) -> bool:
        # Answer before the client sends the body: refuse what would be refused
        # anyway (another site, bad framing, too large) without reading it.
        if not self._allowed():
            return False
        if self.command == "POST":
            try:
                announced_length(self.headers, self.server.max_upload_bytes)
            except HTTPProblem as exc:
                file = _file_name(parse_qs(urlsplit(self.path).query))
                self._send_json(exc.status, error_dict(file, str(exc)))
                return False
        return super().handle_expect_100()

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """http.server's own refusals (bad request line, headers too long ...),
        as one-line JSON like every other answer."""
        try:
            default = HTTPStatus(code).phrase
        except ValueError:
            default = "error"
        message = (message or default)[:200]
        self.log_error("code %d, message %s", code, message)
        self._send_json(code, {"error": message})

    # ----------------------------------------------------------------- helpers
    def _allowed(self) -> bool:
        """False (after answering 403) for a request from another web page."""
        reason = refusal(self.command, self.headers, self.server.allowed_hosts)
        if reason is None:
            return True
        self._send_json(403, {"error": reason})
        return False

    def _read_body(self) -> bytes:
        """The request body, at most ``max_upload_bytes`` of it (else 413), read
        within ``body_timeout`` seconds (else 408)."""
        self.deadline.set_deadline(self.server.body_timeout)
        try:
            body = read_body(self.rfile, self.headers, self.server.max_upload_bytes)
        except RequestTimeout:
            message = (
                f"the upload took longer than {self.server.body_timeout:g} s to arrive"
            )
            raise HTTPProblem(408, message) from None
        self.deadline.stop_waiting()
        return body

    def _drain(self) -> None:
        """Read and drop the rest of a refused body, so the client gets to read the
        413 instead of a connection reset (bounded in bytes and time)."""
        left = _DRAIN_LIMIT
        self.deadline.set_deadline(_DRAIN_SECONDS)
        try:
            while left > 0:
                got = self.rfile.read1(min(left, 1 << 16))
                if not got:
                    break
                left -= len(got)
        except (OSError, RequestTimeout):
            pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        *,
        allow: str | None = None,
    ) -> None:
        self.connection.settimeout(self.server.write_timeout)
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
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, **kwargs: Any) -> None:
        body = json.dumps(obj, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json", **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.server.quiet:
            super().log_message(format, *args)


def _file_name(query: dict[str, list[str]]) -> str:
    """The ``"file"`` of the answer: ``?file=NAME``, else ``"upload"``."""
    return (query.get("file") or ["upload"])[0][:255]


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["0"])[0].lower() in ("1", "true", "yes", "on")
