"""Open or read a file that a stranger may have named: only a regular file, only so big.

A path can name a FIFO (reading it waits forever for a writer), a device
(``/dev/zero`` never ends), a directory or a symlink to any of them.
:func:`open_regular_file` refuses all of these from their ``stat`` before opening,
opens without blocking and checks again on the open descriptor (the path may have
been swapped in between); it returns the open file, for readers that take only the
parts they need (a zip's directory, then its members). :func:`read_regular_file`
reads the whole file through it and never reads more than the cap.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

__all__ = ["open_regular_file", "read_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> bytes:
    """All the bytes of a regular file of at most ``max_bytes`` bytes.

    Parameters
    ----------
    path : str or PathLike
        Symlinks are followed; what they point to must be a regular file.
    max_bytes : int
        Refuse a larger file (checked from ``stat`` before reading, and again while
        reading, in case the file grows).
    what : str
        What the file should be, for messages: ``"image"``, ``"model"``.

    Returns
    -------
    bytes
        The file's contents (possibly empty).

    Raises
    ------
    FileNotFoundError
        Nothing at ``path`` (or a dangling symlink). One line naming the path.
    ValueError
        Not a regular file (the message says what it is), over ``max_bytes``,
        permission denied or another OS error. One line naming the path.
    """
    name = os.fspath(path)
    with open_regular_file(name, max_bytes, what) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ValueError(f"{name}: cannot read the file ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ValueError(_too_big(name, max_bytes, what))
    return data


def open_regular_file(
    path: str | os.PathLike[str], max_bytes: int, what: str
) -> BinaryIO:
    """Open a regular file of at most ``max_bytes`` bytes for binary reading.

    Parameters and errors as :func:`read_regular_file`; the size is checked from
    ``stat`` when opening, so a reader must still bound what it reads.
    """
    name = os.fspath(path)
    try:
        _check_regular(os.stat(name), name, max_bytes, what)
        # O_NONBLOCK: should the path have become a FIFO since the stat, open returns
        # at once instead of waiting for a writer; fstat below then refuses it.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            _check_regular(os.fstat(fd), name, max_bytes, what)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file") from None
    except PermissionError:
        raise ValueError(f"{name}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read the file ({exc.strerror})") from None


def _check_regular(st: os.stat_result, name: str, max_bytes: int, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "a special file")
        raise ValueError(f"{name}: is {kind}, not an ordinary {what} file")
    if st.st_size > max_bytes:
        raise ValueError(_too_big(name, max_bytes, what))


def _too_big(name: str, max_bytes: int, what: str) -> str:
    return f"{name}: larger than the {_size(max_bytes)} limit for a {what} file"


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"
