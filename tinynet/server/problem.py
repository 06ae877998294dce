"""How the server says no: the exception for a refused request, and the bytes of
an answer written without a handler (by the thread that watches waiting heads)."""

from __future__ import annotations

import json
from http import HTTPStatus


class HTTPProblem(Exception):
    """A request the server refuses: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_bytes(status: int, message: str) -> bytes:
    """A whole ``{"error": message}`` answer that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def too_large(cap: int, size: int | None = None) -> HTTPProblem:
    """The 413 for a body over ``cap`` bytes (``size``: its length, when known)."""
    what = f"{size / 2**20:.1f} MB, " if size is not None else ""
    return HTTPProblem(
        413,
        f"upload too large: {what}the limit is {cap / 2**20:g} MB"
        " (downscale the image or raise --max-upload-mb)",
    )
