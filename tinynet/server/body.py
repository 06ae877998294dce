"""Reading a request body under a byte cap, whatever its framing.

The cap counts the bytes taken from the connection for the body: with
``Content-Length`` the body itself; with ``Transfer-Encoding: chunked`` the chunk data
*and* its framing (size lines, extensions, trailers), so no framing trick, such as a
million one-byte chunks or endless trailers, reads more than the cap.

Framing that RFC 9112 does not allow, or that two HTTP parsers could read differently
(the root of request smuggling), is refused instead of guessed at: a repeated or
non-decimal ``Content-Length`` (a sign, ``1,1``, a hex or non-ASCII digit), both
``Content-Length`` and ``Transfer-Encoding``, a coding other than ``chunked``, a chunk
size that is not plain hex (Python's ``int(s, 16)`` would take ``-5``, ``+a`` or
``1_0``), a chunk not followed by its line end.
"""

from __future__ import annotations

import re
from email.message import Message
from io import BufferedIOBase

from .problem import HTTPProblem, too_large

MAX_LINE = 4096
"""Longest chunk-size line or trailer field, in bytes (extensions included)."""
MAX_TRAILERS = 64
"""Most trailer fields after the last chunk."""

_DECIMAL = re.compile(r"[0-9]+")  # str.isdigit would also take "²" and "٣"
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")
_LINE_ENDS = (b"\r\n", b"\n")


def announced_length(headers: Message, cap: int) -> int | None:
    """The body length a request announces: ``Content-Length``, or None for chunked.

    Raises
    ------
    HTTPProblem
        400 for ambiguous or malformed framing, 411 when neither header is sent,
        413 for a length over ``cap``, 501 for a transfer coding other than chunked.
    """
    codings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if codings:
        if lengths:
            message = "both Content-Length and Transfer-Encoding: send only one"
            raise HTTPProblem(400, message)
        coding = ", ".join(c.strip() for c in codings).lower()
        if coding != "chunked":
            message = f"unsupported Transfer-Encoding {coding!r} (only chunked)"
            raise HTTPProblem(501, message)
        return None
    if not lengths:
        raise HTTPProblem(411, "the request needs a Content-Length")
    if len(lengths) > 1:
        raise HTTPProblem(400, "more than one Content-Length header")
    text = lengths[0].strip(" \t")
    if not _DECIMAL.fullmatch(text):
        message = f"bad Content-Length {lengths[0][:40]!r}: expected decimal digits"
        raise HTTPProblem(400, message)
    if len(text) > 18:  # more than an exabyte; int() would refuse 4300+ digits
        raise too_large(cap)
    length = int(text)
    if length > cap:
        raise too_large(cap, length)
    return length


def read_body(rfile: BufferedIOBase, headers: Message, cap: int) -> bytes:
    """The request body, at most ``cap`` bytes of the connection (else 413)."""
    length = announced_length(headers, cap)
    if length is None:
        return read_chunked(rfile, cap)
    data = rfile.read(length)
    if len(data) < length:
        raise HTTPProblem(400, "the upload was cut short")
    return data


def read_chunked(rfile: BufferedIOBase, cap: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body; framing counts towards ``cap``."""
    parts, used = [], 0
    while True:
        line = _read_line(rfile, "chunk size line")
        used += len(line)
        match = _CHUNK_SIZE_LINE.fullmatch(line)
        if match is None:
            message = f"malformed chunk size line {line[:40]!r}: expected hex digits"
            raise HTTPProblem(400, message)
        size = int(match[1], 16)
        if size == 0:
            break
        used += size
        if used > cap:
            raise too_large(cap)
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise HTTPProblem(400, "the upload was cut short")
        parts.append(chunk)
        end = rfile.readline(2)
        if end not in _LINE_ENDS:
            message = "malformed chunked body: a chunk is longer than its size"
            raise HTTPProblem(400, message)
        used += len(end)
    for _ in range(MAX_TRAILERS + 1):
        line = _read_line(rfile, "trailer field")
        used += len(line)
        if used > cap:
            raise too_large(cap)
        if line in _LINE_ENDS:
            return b"".join(parts)
    raise HTTPProblem(400, f"more than {MAX_TRAILERS} trailer fields")


def _read_line(rfile: BufferedIOBase, what: str) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if line.endswith(b"\n"):
        return line
    if len(line) > MAX_LINE:
        raise HTTPProblem(400, f"{what} longer than {MAX_LINE} bytes")
    raise HTTPProblem(400, "the upload was cut short")
