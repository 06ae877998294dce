"""Decode an image file into one grey ``uint8`` array, as photographed.

The representation every other function in :mod:`tinynet.vision` starts from:
``(H, W) uint8``, 0 = black, 255 = white, *no* polarity change (dark ink on paper stays
dark). Colour is reduced to luminance (ITU-R BT.601, as OpenCV), 16-bit and float
samples are scaled to 0-255, transparency is composited over white (over black when
the opaque part is itself light, so a white drawing on a transparent canvas stays
visible), and the EXIF / TIFF orientation tag is applied.

Only the formats of :mod:`.headers` are accepted, and the pixel count is read from
the file header before anything is decoded, so an absurdly large image is refused
without allocating it; a big JPEG is decoded at 1/2, 1/4 or 1/8 scale straight from
the DCT (much faster than decoding then shrinking). Paths must name regular files
(:func:`tinynet.files.read_regular_file`).
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

import cv2
import numpy as np

from ..files import read_regular_file
from .headers import (
    ACCEPTED,
    full_depth_bytes,
    image_format,
    image_size,
    plain_samples,
    tiff_tags,
)

MAX_PIXELS = 50_000_000
"""Default pixel cap: 8000x6000 (a 48 MP phone photo) loads, 8000x8000 is refused."""

MAX_FULL_DEPTH_BYTES = 80_000_000
"""Cap on the buffer of an image decoded with its alpha or float samples
(transparency, TIFF with extra samples, GIF, PFM), at the most its format allows
per pixel: 20 megapixels of 8-bit RGBA. Other images are decoded straight to one
byte of grey a pixel and only ``max_pixels`` applies."""

MAX_FILE_BYTES = 200 * 1024 * 1024

_GREY_REDUCED = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


class ImageError(ValueError):
    """A user-facing problem with an image: one line, naming the file when known."""


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode an image from a path or from the bytes of a file.

    Parameters
    ----------
    source : path or bytes
        PNG, JPEG, BMP, TIFF, WebP, GIF or PNM/PAM/PFM; grey, colour or with alpha;
        8-bit, 16-bit or float. A path must name a regular file.
    max_pixels : int
        Refuse images with more pixels than this (read from the header, before
        decoding). Images with alpha or float samples also have a byte budget,
        :data:`MAX_FULL_DEPTH_BYTES`.
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
        Missing or unreadable file, a directory, FIFO or device, a format not on the
        list, a corrupt header, an empty image, or over ``max_pixels`` or the byte
        budget.
    """
    image, _ = load_image_scaled(source, max_pixels=max_pixels, max_side=max_side)
    return image


def load_image_scaled(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> tuple[np.ndarray, float]:
    """:func:`load_image`, also returning ``scale`` = original size / returned size."""
    data, name = _read_bytes(source)
    if max_side is not None and max_side < 1:
        raise ValueError(f"load_image: max_side must be >= 1, got {max_side}")
    kind = image_format(data)
    if kind is None:
        raise ImageError(f"{name}: not a readable image (tinynet reads {ACCEPTED})")
    if kind == "bigtiff":
        raise ImageError(f"{name}: not a readable image (BigTIFF is not accepted)")
    size = image_size(data, kind)
    if size is None:
        raise ImageError(
            f"{name}: not a readable image (corrupt {kind.upper()} header: no size)"
        )
    _check_pixels(size[0] * size[1], max_pixels, name, size)

    if plain_samples(data, kind):
        factor = 1
        if kind == "jpeg" and max_side is not None:
            # Decode at the smallest DCT scale that keeps ~max_side (a little under
            # is fine and saves a resize).
            while factor < 8 and max(size) / (2 * factor) >= 0.9 * max_side:
                factor *= 2
        # Straight to 8-bit grey (OpenCV's luminance, 16-bit samples scaled); OpenCV
        # applies the EXIF orientation itself for these (non-UNCHANGED) flags.
        with _decoding(name):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), _GREY_REDUCED[factor])
        if image is None or image.size == 0:
            raise ImageError(f"{name}: not a readable image (corrupt {kind.upper()})")
    else:
        need = size[0] * size[1] * full_depth_bytes(data, kind)
        if need > MAX_FULL_DEPTH_BYTES:
            raise ImageError(
                f"{name}: image with transparency or float samples is "
                f"{size[0]}x{size[1]}; decoding it could take {need / 1e6:.0f} MB, "
                f"over the limit of {MAX_FULL_DEPTH_BYTES / 1e6:g} MB; "
                "flatten or downscale it first"
            )
        image, orientation = _decode_unchanged(data, kind, name)
        image = _apply_orientation(_to_grey(image, name), orientation)

    h, w = image.shape
    _check_pixels(h * w, max_pixels, name, (w, h))
    original_long = max(size)
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        new = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), original_long / max(image.shape)


def _read_bytes(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), "<bytes>"
    elif isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        try:
            data = read_regular_file(source, MAX_FILE_BYTES, "image")
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except ValueError as exc:
            raise ImageError(str(exc)) from None
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
    """Decode keeping depth and alpha; also return the EXIF orientation (1-8) still
    to apply."""
    buf = np.frombuffer(data, np.uint8)
    exif = None
    image: cv2.typing.MatLike | None
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
        raise ImageError(f"{name}: not a readable image (corrupt {kind.upper()})")
    if kind == "tiff":
        return image, 1  # OpenCV's TIFF decoder applies the orientation tag itself
    try:
        tags = tiff_tags(exif, (274,)) if exif else {}
    except (struct.error, IndexError, ValueError, KeyError):
        tags = {}
    orientation = tags.get(274, 1)
    return image, orientation if 1 <= orientation <= 8 else 1


def _to_grey(image: np.ndarray, name: str) -> np.ndarray:
    """Any depth / channel count -> (H, W) uint8, alpha composited.

    The channels are reduced first, at the decoded depth (OpenCV converts 8-bit,
    16-bit and float colour directly): only one grey plane, and the alpha plane
    when there is one, are ever copied to float.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"{name}: unsupported channel count {channels}")
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        image = image.astype(np.float32)  # rare TIFF sample types
    alpha = None
    if channels == 1:
        grey = image
    elif channels == 2:
        grey, alpha = image[:, :, 0], image[:, :, 1]
    else:
        grey = cv2.cvtColor(
            image, cv2.COLOR_BGRA2GRAY if channels == 4 else cv2.COLOR_BGR2GRAY
        )
        alpha = image[:, :, 3] if channels == 4 else None
    grey, top = _to_eight_bit(grey, name)
    return grey if alpha is None else _composite(grey, alpha, top)


def _to_eight_bit(grey: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """(H, W) uint8 from uint8, uint16 or float32 samples, and the full-scale value
    of the input (what an opaque alpha holds)."""
    if grey.dtype == np.uint8:
        return grey, 255.0
    if grey.dtype == np.uint16:
        return cv2.convertScaleAbs(grey, alpha=255.0 / 65535.0), 65535.0
    # Float samples: stretch what is there (finite values only).
    finite = np.isfinite(grey)
    if not finite.any():
        raise ImageError(f"{name}: image has no finite pixel values")
    lo, hi = float(grey[finite].min()), float(grey[finite].max())
    top = hi - lo if hi > lo else 1.0
    x = np.where(finite, grey - np.float32(lo), np.float32(0.0))
    return cv2.convertScaleAbs(x, alpha=255.0 / top), top


def _composite(grey: np.ndarray, alpha: np.ndarray, top: float) -> np.ndarray:
    """Grey over white through ``alpha`` (0 transparent .. ``top`` opaque), or over
    black when what is drawn is itself light (white ink on a clear canvas).

    (H, W) uint8 in and out, computed in 8 bits (one rounding), without float copies
    of the whole image.
    """
    if alpha.dtype != np.uint8:
        alpha = cv2.convertScaleAbs(alpha, alpha=255.0 / top)
    if cv2.minMaxLoc(alpha)[0] == 255:  # fully opaque
        return grey
    # The polarity of the drawing, from a subsample of at most ~1M pixels.
    step = max(1, int(np.sqrt(grey.size / 1e6)))
    a = alpha[::step, ::step].astype(np.float32)
    weight = float(a.sum())
    drawn = float((grey[::step, ::step] * a).sum()) / weight if weight > 0 else 0.0
    if drawn >= 128.0:  # over black: grey * alpha
        return cv2.multiply(grey, alpha, scale=1 / 255)
    # Over white: 255 - (255 - grey) * alpha
    return cv2.bitwise_not(cv2.multiply(cv2.bitwise_not(grey), alpha, scale=1 / 255))


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
