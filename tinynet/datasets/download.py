"""Verified, atomic downloads into the user cache.

A file is streamed into a temporary file *in the destination folder*, checked by
a caller-supplied ``verify`` function, and only then moved into place with
``os.replace``. Whatever goes wrong (network error, bad checksum, Ctrl-C), the
temporary file is removed, so the cache never holds a partial or unverified file
under its real name.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TextIO

_CHUNK = 1 << 16
_USER_AGENT = "tinynet-datasets/1 (+python urllib)"


class DownloadError(OSError):
    """Every mirror failed for a file; ``attempts`` lists ``(url, reason)``."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/tinynet``, or ``~/.cache/tinynet`` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    # The XDG spec says relative values are invalid and must be ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "tinynet"


class _Progress:
    """A one-line text progress bar on a stream, redrawn at most ~10 times/s."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.done = 0
        self._last = 0.0
        self._tty = bool(stream is not None and getattr(stream, "isatty", bool)())

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._last >= 0.1:
            self._last = now
            self._draw("\r")

    def close(self) -> None:
        self._draw("\r" if self._tty else "")
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, prefix: str) -> None:
        if self.stream is None:
            return
        mb = self.done / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            total = self.total / 1e6
            text = f"{self.label} [{bar:<30}] {frac:4.0%} {mb:.1f}/{total:.1f} MB"
        else:
            text = f"{self.label} {mb:.1f} MB"
        self.stream.write(prefix + text)
        self.stream.flush()


def _stream_to(
    url: str, fileobj: IO[bytes], label: str, timeout: float, stream: TextIO | None
) -> None:
    # Imported here: with http and ssl it costs 30-80 ms, which a load that finds
    # its files locally never needs.
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        progress = _Progress(label, int(length) if length else None, stream)
        try:
            while chunk := response.read(_CHUNK):
                fileobj.write(chunk)
                progress.update(len(chunk))
        finally:
            progress.close()
        if length and progress.done != int(length):
            raise OSError(f"connection closed after {progress.done} of {length} bytes")


def fetch_verified(
    filename: str,
    dest_dir: str | os.PathLike[str],
    mirrors: Sequence[str],
    verify: Callable[[Path], None],
    *,
    timeout: float = 30.0,
    stream: TextIO | None = sys.stderr,
) -> Path:
    """Download ``filename`` from the first mirror that serves a verified copy.

    Parameters
    ----------
    filename : name of the file on every mirror and in ``dest_dir``.
    dest_dir : folder to write into (created if needed).
    mirrors : base URLs tried in order; ``filename`` is appended to each.
    verify : called with the downloaded temporary file; raises ``ValueError``
        if the content is wrong, in which case the next mirror is tried.
    timeout : seconds of socket inactivity before a mirror is abandoned.
    stream : where the progress bar goes (``None`` for silence).

    Returns
    -------
    The final path ``dest_dir / filename``.

    Raises
    ------
    DownloadError
        No mirror delivered a verified file; the message lists each URL and why.
    """
    import urllib.error

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / filename
    attempts: list[tuple[str, str]] = []
    for base in mirrors:
        url = base if base.endswith(filename) else base.rstrip("/") + "/" + filename
        fd, tmp_name = tempfile.mkstemp(
            dir=dest_dir, prefix=f".{filename}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                _stream_to(url, f, f"Downloading {filename}", timeout, stream)
            verify(Path(tmp_name))
            os.replace(tmp_name, target)
            return target
        except (OSError, ValueError) as exc:
            # urllib's HTTPError/URLError and socket timeouts are OSErrors.
            if isinstance(exc, urllib.error.HTTPError):
                reason = f"HTTP {exc.code} {exc.reason}"
            elif isinstance(exc, urllib.error.URLError):
                reason = str(exc.reason)
            else:
                reason = f"{type(exc).__name__}: {exc}"
            attempts.append((url, reason))
        finally:
            # Also reached on KeyboardInterrupt: never leave the .part behind.
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    lines = "\n".join(f"  {url}: {why}" for url, why in attempts)
    raise DownloadError(f"could not download {filename}; tried:\n{lines}", attempts)
