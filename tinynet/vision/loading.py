"""Decode an image file into one grey ``uint8`` array, as photographed.

The representation every other function in :mod:`tinynet.vision` starts from:
``(H, W) uint8``, 0 = black, 255 = white, *no* polarity change (dark ink on paper stays
dark). Colour is reduced to luminance (ITU-R BT.601, as OpenCV), 16-bit and float
samples are scaled to 0-255, transparency is composited over white (over black when
the opaque part is itself light, so a white drawing on a transparent canvas stays
visible), and the EXIF / TIFF orientation tag is applied.

The pixel count is read from the file header before anything is decoded, so an
absurdly large image is refused without allocating it; a big JPEG is decoded at
1/2, 1/4 or 1/8 scale straight from the DCT (much faster than decoding then shrinking).
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000
"""Default pixel cap: 8000x6000 (a 48 MP phone photo) loads, 8000x8000 is refused."""

MAX_FILE_BYTES = 200 * 1024 * 1024

_JPEG_REDUCED = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


class ImageError(ValueError):
    """A user-facing problem with an image: one line, naming the file when known."""


def load_image(
    source: str | os.PathLike | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode an image from a path or from the bytes of a file.

    Parameters
    ----------
    source : path or bytes
        PNG, JPEG, BMP, TIFF or WebP (whatever OpenCV decodes); grey, colour or
        with alpha; 8- or 16-bit.
    max_pixels : int
        Refuse images with more pixels than this (checked from the header when the
        format allows, before decoding).
    max_side : int or None
        If given, shrink the image (area averaging) so that its longest side is at most
        ``max_side``; big JPEGs are decoded directly at a reduced scale.

    Returns
    -------
    image : (H, W) uint8
        Grey levels as photographed (0 black, 255 white), orientation applied.

    Raises
    ------
    ImageError
        Missing or unreadable file, not an image, empty image, or over ``max_pixels``.
    """
    image, _ = load_image_scaled(source, max_pixels=max_pixels, max_side=max_side)
    return image


def load_image_scaled(
    source: str | os.PathLike | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> tuple[np.ndarray, float]:
    """:func:`load_image`, also returning ``scale`` = original size / returned size."""
    data, name = _read_bytes(source)
    if max_side is not None and max_side < 1:
        raise ValueError(f"load_image: max_side must be >= 1, got {max_side}")
    kind = _sniff_format(data)
    size = _header_size(data, kind)
    if size is not None:
        _check_pixels(size[0] * size[1], max_pixels, name, size)

    if kind == "jpeg":
        factor = 1
        if size is not None and max_side is not None:
            # Decode at the smallest DCT scale that keeps ~max_side (a little under
            # is fine and saves a resize).
            while factor < 8 and max(size) / (2 * factor) >= 0.9 * max_side:
                factor *= 2
        # OpenCV applies the EXIF orientation itself for these (non-UNCHANGED) flags.
        with _decoding(name):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), _JPEG_REDUCED[factor])
        if image is None or image.size == 0:
            raise ImageError(f"{name}: not a readable image (corrupt JPEG)")
    else:
        image, orientation = _decode_unchanged(data, kind, name)
        image = _apply_orientation(_to_grey(image, name), orientation)

    h, w = image.shape
    _check_pixels(h * w, max_pixels, name, (w, h))
    original_long = max(h, w) if size is None else max(size)
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        new = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), original_long / max(image.shape)


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), "<bytes>"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = str(path)
        try:
            if path.is_dir():
                raise ImageError(f"{name}: is a directory, not an image file")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ImageError(
                    f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MB"
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file ({exc.strerror})") from None
    else:
        raise TypeError(
            f"load_image: source must be a path or bytes, got {type(source).__name__}"
        )
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    return data, name


def _check_pixels(n: int, max_pixels: int, name: str, size: tuple[int, int]) -> None:
    if size[0] <= 0 or size[1] <= 0:
        raise ImageError(f"{name}: image has zero size ({size[0]}x{size[1]})")
    if n > max_pixels:
        raise ImageError(
            f"{name}: image is {size[0]}x{size[1]} = {n / 1e6:.0f} megapixels, "
            f"over the limit of {max_pixels / 1e6:g} megapixels; downscale it first"
        )


def _sniff_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return "other"


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when unknown or truncated."""
    try:
        if kind == "png":
            return struct.unpack(">II", data[16:24])
        if kind == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return w, abs(h)
        if kind == "tiff":
            tags = _tiff_ifd0(data)
            return (tags[256], tags[257]) if 256 in tags and 257 in tags else None
        if kind == "webp":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w, h = data[24:27], data[27:30]
                return int.from_bytes(w, "little") + 1, int.from_bytes(h, "little") + 1
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if kind == "jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_ifd0(block: bytes) -> dict[int, int]:
    """Integer tags of the first IFD of a TIFF structure (a TIFF file or EXIF block)."""
    if block[:6] == b"Exif\x00\x00":
        block = block[6:]
    order = {b"II": "<", b"MM": ">"}.get(block[:2])
    if order is None:
        return {}
    (offset,) = struct.unpack(order + "I", block[4:8])
    (count,) = struct.unpack(order + "H", block[offset : offset + 2])
    tags = {}
    for k in range(count):
        entry = block[offset + 2 + 12 * k : offset + 14 + 12 * k]
        tag, typ, n = struct.unpack(order + "HHI", entry[:8])
        if n >= 1 and typ == 3:  # SHORT
            tags[tag] = struct.unpack(order + "H", entry[8:10])[0]
        elif n >= 1 and typ == 4:  # LONG
            tags[tag] = struct.unpack(order + "I", entry[8:12])[0]
    return tags


@contextlib.contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Turn an OpenCV decoder failure into a one-line ImageError.

    Most bad files make ``imdecode`` return None, but some headers fail one of its
    assertions instead (a PFM or Sun raster with a zero or huge height raises
    ``cv2.error``); callers should only ever have to catch ``ImageError``.
    """
    try:
        yield
    except cv2.error:
        raise ImageError(
            f"{name}: not a readable image (OpenCV could not decode it)"
        ) from None


def _decode_unchanged(data: bytes, kind: str, name: str) -> tuple[np.ndarray, int]:
    """Decode keeping depth and alpha; also return the EXIF/TIFF orientation (1-8)."""
    buf = np.frombuffer(data, np.uint8)
    exif = None
    with _decoding(name):
        if hasattr(cv2, "imdecodeWithMetadata"):  # OpenCV >= 4.12
            # By keyword: 4.12-4.14 bind (buf, metadata, flags), 5.x (buf, flags).
            image, types, blobs = cv2.imdecodeWithMetadata(
                buf, flags=cv2.IMREAD_UNCHANGED
            )
            for t, blob in zip(types, blobs, strict=False):
                if t == cv2.IMAGE_METADATA_EXIF and blob is not None:
                    exif = np.asarray(blob, np.uint8).tobytes()
        else:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        what = "corrupt or unsupported image" if kind != "other" else "not an image"
        raise ImageError(f"{name}: not a readable image ({what})")
    block = data if kind == "tiff" else exif
    try:
        tags = _tiff_ifd0(block) if block else {}
    except (struct.error, IndexError, ValueError):
        tags = {}
    orientation = tags.get(274, 1)
    return image, orientation if 1 <= orientation <= 8 else 1


def _to_grey(image: np.ndarray, name: str) -> np.ndarray:
    """Any depth / channel count -> (H, W) uint8, alpha composited."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    x = image.astype(np.float32)
    if image.dtype == np.uint8:
        top = 255.0
    elif image.dtype == np.uint16:
        top = 65535.0
    else:  # float or other integer TIFFs: stretch what is there
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise ImageError(f"{name}: image has no finite pixel values")
        lo, hi = float(finite.min()), float(finite.max())
        x = np.nan_to_num(x - lo, nan=0.0, posinf=0.0, neginf=0.0)
        top = hi - lo if hi > lo else 1.0
    x *= 255.0 / top
    if x.ndim == 2:
        grey = x
    elif x.shape[2] in (3, 4):
        grey = cv2.cvtColor(x[:, :, :3], cv2.COLOR_BGR2GRAY)
        if x.shape[2] == 4:
            grey = _composite(grey, x[:, :, 3] / 255.0)
    elif x.shape[2] == 2:
        grey = _composite(x[:, :, 0], x[:, :, 1] / 255.0)
    else:
        raise ImageError(f"{name}: unsupported channel count {x.shape[2]}")
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    weight = float(alpha.sum())
    if weight >= alpha.size - 0.5:  # fully opaque
        return grey
    # Over white, unless what is drawn is itself light (white ink on a clear canvas).
    fg = float((grey * alpha).sum()) / weight if weight > 0 else 0.0
    back = 255.0 if fg < 128.0 else 0.0
    return grey * alpha + back * (1.0 - alpha)


# EXIF orientation -> the view that brings the stored pixels upright.
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1, :],
    5: lambda a: a.T,
    6: lambda a: a.T[:, ::-1],  # stored lying left: turn 90 degrees clockwise
    7: lambda a: a.T[::-1, ::-1],
    8: lambda a: a.T[::-1, :],  # turn 90 degrees counter-clockwise
}


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENTATIONS.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))
