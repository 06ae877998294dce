"""Open a file that a stranger may have named: only a regular file, only so big.

A path can name a FIFO (reading it waits forever for a writer), a device
(``/dev/zero`` never ends), a directory or a symlink to any of them.
:func:`open_regular_file` refuses all of these from their ``stat`` before opening,
opens without blocking and checks again on the open descriptor (the path may have
been swapped in between). It returns the open file, for readers that take only
the parts they need (a zip's directory, then its members).
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

__all__ = ["open_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular_file(
    path: str | os.PathLike[str], max_bytes: int, what: str
) -> BinaryIO:
    """Open a regular file of at most ``max_bytes`` bytes for binary reading.

    Parameters
    ----------
    path : symlinks are followed; what they point to must be a regular file.
    max_bytes : refuse a larger file (from its size when opened).
    what : what the file should be, for messages: ``"model"``.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path`` (or a dangling symlink). One line naming the path.
    ValueError
        Not a regular file (the message says what it is), over ``max_bytes``,
        permission denied or another OS error. One line naming the path.
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
        raise ValueError(
            f"{name}: {st.st_size:,} bytes, over the {max_bytes:,}-byte limit for a "
            f"{what} file"
        )
