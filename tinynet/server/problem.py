"""The one exception the request handling raises for a request it refuses."""

from __future__ import annotations


class HTTPProblem(Exception):
    """A request the server refuses: ``status`` and a one-line message.

    ``close`` asks for the connection to be closed after the answer (the rest of the
    request, if any, is not read and cannot be parsed as the next request).
    """

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def too_large(cap: int, size: int | None = None) -> HTTPProblem:
    """The 413 for a body over ``cap`` bytes (``size``: its length, when known)."""
    what = f"{size / 2**20:.1f} MB, " if size is not None else ""
    return HTTPProblem(
        413,
        f"upload too large: {what}the limit is {cap / 2**20:g} MB"
        " (downscale the image or raise --max-upload-mb)",
        close=True,
    )
