"""Open a file a stranger may have named: regular files only, with a size cap.

A FIFO would block ``open`` forever, ``/dev/zero`` (or a symlink to it) never ends,
and a directory is no file: each is refused at once, saying what it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["open_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular_file(path: str | os.PathLike, *, max_bytes: int) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file of at most
    ``max_bytes`` bytes (symlinks are followed, then judged by their target).

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    ValueError
        ``"<path>: is a FIFO (named pipe), not a regular file"`` and the like, or
        ``"<path>: 3,200.0 MB is over the limit of 1,073.7 MB"``.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of
        # waiting; the fstat below then refuses it. No effect on regular files.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a regular file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next(
                (name for test, name in _KINDS if test(info.st_mode)), "a special file"
            )
            via = " (through a symlink)" if path.is_symlink() else ""
            raise ValueError(f"{path}: is {kind}{via}, not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(
                f"{path}: {info.st_size / 1e6:,.1f} MB is over the limit of "
                f"{max_bytes / 1e6:,.1f} MB"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
