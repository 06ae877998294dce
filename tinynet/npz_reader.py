"""Read a ``.npz`` someone else made, deciding from its directory before reading data.

``np.load`` trusts the file: a 2 MB zip can inflate to gigabytes, a zip directory
can list millions of entries, and a ``.npy`` header can declare any shape. Here
every cost is known, and capped, before it is paid:

1. the file is a regular file under a size cap (:mod:`tinynet.files`);
2. the zip's end record gives the size of its directory, capped before the
   directory is parsed;
3. each member is a stored or deflated ``.npy`` that inflates at most
   ``max_inflation`` times, the members fit in the file side by side (no two share
   their bytes), and all of them together stay under ``max_data_bytes``;
4. each ``.npy`` header (read alone, a few hundred bytes, when the caller asks for
   it) declares a plain numeric or unicode array whose size matches the member's
   size in the directory, so the caller knows every shape and dtype before any
   data is read.

Entry names come from the directory alone (``keys``), so a caller can refuse
unexpected entries before reading even their headers.

Pickles are never loaded: object dtypes are refused from the header.
"""

from __future__ import annotations

import os
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

import numpy as np

from .files import open_regular_file

__all__ = ["ArrayHeader", "CheckedNpz"]

_END_RECORD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END_RECORD = b"PK\x06\x06"
_MAX_COMMENT = 0xFFFF
_NPY_HEADER_MAX = 10_000  # numpy's own default limit for a .npy header
# What zipfile raises on damaged input: zlib.error for a broken deflate stream,
# NotImplementedError for zip features it lacks (a newer version, patched data).
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    struct.error,
    NotImplementedError,
)


@dataclass(frozen=True)
class ArrayHeader:
    """What a ``.npy`` header declares: ``shape``, ``dtype`` and its data bytes."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


class CheckedNpz:
    """An open ``.npz`` whose directory passed every check; headers are checked
    as they are read.

    Parameters
    ----------
    path : the file.
    max_file_bytes, max_directory_bytes, max_data_bytes : caps on the file size, the
        zip directory and the sum of the members' inflated sizes.
    max_inflation : how many times larger than its compressed size a deflated
        member may be (tinynet writes stored members: 1).
    what : what the file should be, for messages ("model").

    Attributes
    ----------
    keys : the entry names (without ``.npy``), in file order.

    Raises
    ------
    FileNotFoundError, or ValueError naming the file and the check that failed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_file_bytes: int,
        max_directory_bytes: int,
        max_data_bytes: int,
        max_inflation: int,
        what: str = ".npz",
    ) -> None:
        self.path = Path(path)
        self._file = open_regular_file(self.path, max_file_bytes, what)
        try:
            directory = _directory_bytes(self._file)
            if directory > max_directory_bytes:
                self._fail(
                    f"its zip directory takes {directory:,} bytes, over the limit of "
                    f"{max_directory_bytes:,}"
                )
            self._zip = zipfile.ZipFile(self._file)
            self._infos = self._check_members(max_data_bytes, max_inflation)
            self.keys = tuple(self._infos)
            self._headers: dict[str, ArrayHeader] = {}
        except ValueError:
            self.close()
            raise
        except _UNREADABLE as err:
            self.close()
            self._fail(f"not a readable .npz file ({err})")

    def _fail(self, reason: str) -> NoReturn:
        raise ValueError(f"{self.path}: {reason}")

    def _check_members(
        self, max_data_bytes: int, max_inflation: int
    ) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in infos:
                self._fail(f"entry {name!r} is not one distinct .npy array")
            key = name[:-4]
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._fail(f"entry {key!r} uses an unsupported zip compression")
            if info.flag_bits & 0x1:
                self._fail(f"entry {key!r} is encrypted")
            if info.file_size > max_inflation * info.compress_size + (1 << 16):
                self._fail(
                    f"entry {key!r} inflates from {info.compress_size:,} to "
                    f"{info.file_size:,} bytes, over the limit of {max_inflation}x"
                )
            infos[key] = info
        packed = sum(info.compress_size for info in infos.values())
        if packed > os.fstat(self._file.fileno()).st_size:
            # Entries sharing their compressed bytes would multiply the inflation cap.
            self._fail(f"its entries claim {packed:,} bytes, more than the file holds")
        total = sum(info.file_size for info in infos.values())
        if total > max_data_bytes:
            self._fail(
                f"its arrays take {total:,} bytes, over the limit of {max_data_bytes:,}"
            )
        return infos

    def header(self, key: str) -> ArrayHeader:
        """What entry ``key`` declares, checked against its size in the directory."""
        if key not in self._headers:
            self._headers[key] = self._read_header(key, self._infos[key])
        return self._headers[key]

    def _read_header(self, name: str, info: zipfile.ZipInfo) -> ArrayHeader:
        try:
            with self._zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(member, max_header_size=_NPY_HEADER_MAX)
                offset = member.tell()
        except _UNREADABLE as err:
            self._fail(f"entry {name!r} cannot be read ({err})")
        except (ValueError, SyntaxError, tokenize.TokenError) as err:
            # numpy parses the header dict with tokenize and ast
            self._fail(f"entry {name!r} is not a valid .npy array ({err})")
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            # Never unpickled: say what it is instead of numpy's allow_pickle advice.
            self._fail(f"entry {name!r} holds Python objects, not numbers")
        if dtype.kind not in "fiuU":
            self._fail(f"entry {name!r} has the unsupported dtype {dtype}")
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
        if offset + nbytes != info.file_size:
            self._fail(
                f"entry {name!r} declares {nbytes:,} bytes of data for shape "
                f"{shape}, but the member holds {info.file_size - offset:,}"
            )
        return ArrayHeader(tuple(shape), dtype, nbytes)

    def read(self, key: str) -> np.ndarray:
        """The array of entry ``key``, once its header passed the checks."""
        self.header(key)
        try:
            with self._zip.open(self._infos[key]) as member:
                return np.lib.format.read_array(
                    member, allow_pickle=False, max_header_size=_NPY_HEADER_MAX
                )
        except (*_UNREADABLE, ValueError) as err:
            self._fail(f"entry {key!r} cannot be read ({err})")

    def close(self) -> None:
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()
        self._file.close()

    def __enter__(self) -> CheckedNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _directory_bytes(f: IO[bytes]) -> int:
    """Size of the zip's central directory, from its end record (zip64 too)."""
    size = f.seek(0, os.SEEK_END)
    start = max(0, size - 22 - _MAX_COMMENT)
    f.seek(start)
    tail = f.read()
    at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no zip end record")
    directory: int
    (directory,) = struct.unpack_from("<L", tail, at + 12)
    if directory != 0xFFFFFFFF:
        return directory
    if at < 20 or tail[at - 20 : at - 16] != _ZIP64_LOCATOR:
        raise zipfile.BadZipFile("zip64 end record missing")
    (record_at,) = struct.unpack_from("<Q", tail, at - 12)
    f.seek(record_at)
    record = f.read(56)
    if len(record) < 56 or record[:4] != _ZIP64_END_RECORD:
        raise zipfile.BadZipFile("zip64 end record damaged")
    (directory,) = struct.unpack_from("<Q", record, 40)
    return directory
