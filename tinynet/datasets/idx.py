"""Reading IDX files (the MNIST container format), gzipped or raw.

An IDX file is a 4-byte magic number ``0x0000 TT DD`` (``TT`` the element type,
``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then the
elements row-major. MNIST uses unsigned bytes (``TT = 0x08``): 2049 for labels
(one dimension), 2051 for images (three dimensions).

Every check here raises :class:`CorruptFileError` (a ``ValueError``) naming the
file, the expected and the received thing, so a broken download is never
mistaken for a shape bug further down.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_GZIP_MAGIC = b"\x1f\x8b"


class CorruptFileError(ValueError):
    """An IDX file (or its gzip wrapper) is malformed or fails its checksum."""


@dataclass(frozen=True)
class Payload:
    """The decompressed bytes of one IDX file and where they came from."""

    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_payload(path: str | os.PathLike[str], *, name: str | None = None) -> Payload:
    """Return the IDX bytes of ``path``, decompressing it if it is gzip.

    Gzip is recognised by its magic bytes, not the file name, so a raw file
    saved as ``.gz`` (some browsers decompress on the fly) still loads.
    ``name`` is what error messages call the file (default: ``path``).
    """
    name = name or os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return Payload(raw, name)
    try:
        return Payload(gzip.decompress(raw), name)
    except (OSError, EOFError, zlib.error) as exc:
        # EOFError: truncated stream; OSError/zlib.error: bad header or CRC.
        raise CorruptFileError(
            f"{name}: not a valid gzip file ({exc}); delete it and fetch it again"
        ) from exc


def _header(payload: Payload, magic: int, ndim: int) -> tuple[int, ...]:
    data, name = payload.data, payload.source
    header_len = 4 + 4 * ndim
    if len(data) >= 4:
        (got_magic,) = struct.unpack(">I", data[:4])
        if got_magic != magic:
            kind = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}.get(got_magic)
            hint = f" (that is an IDX {kind} file)" if kind else ""
            raise CorruptFileError(
                f"{name}: bad IDX magic number: expected {magic} (0x{magic:08x}), "
                f"got {got_magic} (0x{got_magic:08x}){hint}"
            )
    if len(data) < header_len:
        raise CorruptFileError(
            f"{name}: truncated IDX file: {len(data)} bytes, shorter than the "
            f"{header_len}-byte header"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise CorruptFileError(
            f"{name}: IDX file {what}: header says {'x'.join(map(str, dims))} "
            f"({expected} bytes with the header), the file holds {len(data)} bytes"
        )
    return dims


def parse_images(
    payload: Payload, *, shape: tuple[int, int] | None = (28, 28)
) -> np.ndarray:
    """Images of an IDX3 payload as a writable ``uint8`` array ``(N, rows, cols)``.

    ``shape`` is the required ``(rows, cols)``; ``None`` accepts any.
    """
    n, rows, cols = _header(payload, IMAGES_MAGIC, 3)
    if shape is not None and (rows, cols) != tuple(shape):
        raise CorruptFileError(
            f"{payload.source}: images are {rows}x{cols}, expected "
            f"{shape[0]}x{shape[1]}"
        )
    # .copy(): frombuffer over bytes is read-only, and callers normalise in place.
    images = np.frombuffer(payload.data, np.uint8, offset=16)
    return images.reshape(n, rows, cols).copy()


def parse_labels(payload: Payload, *, num_classes: int | None = 10) -> np.ndarray:
    """Labels of an IDX1 payload as a writable ``uint8`` array ``(N,)``.

    Every label must be below ``num_classes`` (``None`` skips the check).
    """
    _header(payload, LABELS_MAGIC, 1)
    labels = np.frombuffer(payload.data, np.uint8, offset=8).copy()
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise CorruptFileError(
            f"{payload.source}: label {int(labels[bad])} at index {bad} is out of "
            f"range, expected 0..{num_classes - 1}"
        )
    return labels


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a ``uint8`` array of 1 or 3 dimensions (for tests and tools)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            f"encode_idx: expected a uint8 array of 1 or 3 dimensions, got "
            f"{array.dtype} with shape {array.shape}"
        )
    return idx_header(array.shape) + np.ascontiguousarray(array).tobytes()


def idx_header(shape: tuple[int, ...]) -> bytes:
    """The IDX header of a ``uint8`` array of ``shape``: labels (1 dimension) or
    images (3)."""
    magic = LABELS_MAGIC if len(shape) == 1 else IMAGES_MAGIC
    return struct.pack(f">I{len(shape)}I", magic, *shape)
