"""Image formats tinynet accepts, and each one's pixel size read from its header.

OpenCV allocates the full image before it decodes a pixel, so a few kilobytes can
ask for gigabytes (a blank 8000x8000 PNG is 250 KB). The size is therefore read
here, from the bytes, for every format on the allow-list; anything else (Sun
raster, HDR, EXR, JPEG 2000, AVIF, ...) is refused before OpenCV sees it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

ACCEPTED = "PNG, JPEG, BMP, TIFF, WebP, GIF, PNM/PAM/PFM"

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "bigtiff"),
    (b"MM\x00+", "bigtiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


_MAX_SEGMENTS = 10_000
"""JPEG segments before the frame header, PNG chunks before the pixels: real files
have tens; one made of tiny segments is refused as corrupt, not walked for seconds."""
_MAX_GIF_BLOCKS = 1_000_000
"""GIF blocks and sub-blocks, frames included: more than a 200 MB GIF of full
255-byte sub-blocks holds."""


def image_format(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"tiff"``, ``"bigtiff"``, ``"bmp"``, ``"gif"``,
    ``"webp"``, ``"pnm"``, or None for anything else."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"1234567Ff":
        return "pnm"
    return None


def image_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) the decoder will allocate, or None when the header is
    truncated or malformed (the caller refuses the file then)."""
    try:
        return _READERS[kind](data)
    except (struct.error, IndexError, ValueError, KeyError):
        return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":  # IHDR must come first; a decoder may look further
        return None
    return struct.unpack(">II", data[16:24])


_JPEG_NO_LENGTH = frozenset((0x01, *range(0xD0, 0xD9)))  # TEM, RSTn, SOI markers


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The first frame header (SOF), as libjpeg reads it, walking every segment."""
    i = 2
    for _ in range(_MAX_SEGMENTS):
        if i + 4 > len(data) or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            return None
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _bmp(data: bytes) -> tuple[int, int]:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    w, h = struct.unpack("<ii", data[18:26])
    return w, abs(h)


def _tiff(data: bytes) -> tuple[int, int] | None:
    """Width and length of the first directory (the page OpenCV decodes).

    A tag given twice counts with its larger value, whichever one the decoder keeps.
    """
    tags = tiff_tags(data, (256, 257))
    if 256 not in tags or 257 not in tags:
        return None
    return tags[256], tags[257]


def tiff_tags(block: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """Integer tags of the first IFD of a TIFF structure (a TIFF file or an EXIF
    block); a tag given twice keeps its largest value."""
    if block[:6] == b"Exif\x00\x00":
        block = block[6:]
    order = {b"II": "<", b"MM": ">"}[block[:2]]
    (offset,) = struct.unpack(order + "I", block[4:8])
    (count,) = struct.unpack(order + "H", block[offset : offset + 2])
    tags: dict[int, int] = {}
    for k in range(count):
        entry = block[offset + 2 + 12 * k : offset + 14 + 12 * k]
        tag, typ, n = struct.unpack(order + "HHI", entry[:8])
        if tag not in wanted or not 1 <= n <= (2 if typ == 3 else 1):
            continue  # (more values than fit in the entry: it holds an offset)
        if typ == 3:  # SHORT
            value = struct.unpack(order + "H", entry[8:10])[0]
        elif typ == 4:  # LONG
            value = struct.unpack(order + "I", entry[8:12])[0]
        else:
            continue
        tags[tag] = max(value, tags.get(tag, 0))
    return tags


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas size
        w, h = data[24:27], data[27:30]
        return int.from_bytes(w, "little") + 1, int.from_bytes(h, "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    """The logical screen, grown to hold every frame the file places on it."""
    width, height, flags = struct.unpack("<HHB", data[6:11])
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    in_block = False  # between a block's header and its sub-blocks' terminator
    for _ in range(_MAX_GIF_BLOCKS):
        if in_block:  # one sub-block, or the terminator
            in_block = data[i] != 0
            i += data[i] + 1
        elif i >= len(data) or data[i] == 0x3B:  # end of file, or the trailer
            return width, height
        elif data[i] == 0x21:  # extension: label, then sub-blocks
            i, in_block = i + 2, True
        elif data[i] == 0x2C:  # image descriptor, colour table, LZW code size
            left, top, w, h, local = struct.unpack("<HHHHB", data[i + 1 : i + 10])
            width, height = max(width, left + w), max(height, top + h)
            i += 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            in_block = True
        else:
            return None
    return None


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\S+)")


def _pnm(data: bytes) -> tuple[int, int] | None:
    """P1-P6 and PFM: width and height are the first two tokens after the magic
    (comments allowed in P1-P6); PAM (P7): the WIDTH and HEIGHT lines."""
    head = data[:4096]
    if head[1:2] == b"7":
        fields = dict(re.findall(rb"^(WIDTH|HEIGHT)[ \t]+(\d+)", head, re.M))
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    pos, values = 2, []
    for _ in range(2):
        match = _PNM_TOKEN.match(head, pos)
        if match is None:
            return None
        values.append(int(match.group(1)))
        pos = match.end()
    return values[0], values[1]


def plain_samples(data: bytes, kind: str) -> bool:
    """True when the file surely holds integer samples without transparency, so
    that OpenCV may decode it straight to 8-bit grey (one byte a pixel); False when
    it may hold alpha or float samples, or the header does not say."""
    try:
        return _PLAIN[kind](data)
    except (struct.error, IndexError, ValueError, KeyError):
        return False


def _png_plain(data: bytes) -> bool:
    if data[25] not in (0, 2, 3):  # grey, RGB, palette: no alpha channel
        return False
    i = 8
    for _ in range(_MAX_SEGMENTS):  # a tRNS chunk before the pixels: transparency
        if i + 8 > len(data):
            return False
        (length,), chunk = struct.unpack(">I", data[i : i + 4]), data[i + 4 : i + 8]
        if chunk == b"tRNS":
            return False
        if chunk == b"IDAT":
            return True
        i += 12 + length
    return False


def _webp_plain(data: bytes) -> bool:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return not data[20] & 0x10  # the alpha flag
    if chunk == b"VP8L":
        return not (int.from_bytes(data[21:25], "little") >> 28) & 1  # alpha_is_used
    return chunk == b"VP8 "  # simple lossy: never alpha


def _tiff_plain(data: bytes) -> bool:
    tags = tiff_tags(data, (277, 338, 339))  # samples per pixel, extra, format
    # (For three samples the format tag holds an offset and is not read: a rare
    # float colour TIFF then decodes wrongly, but still at one byte a pixel.)
    return tags.get(277, 1) in (1, 3) and 338 not in tags and tags.get(339, 1) in (1, 2)


def _pnm_plain(data: bytes) -> bool:
    if data[1:2] in b"Ff":  # PFM: float samples
        return False
    return data[1:2] != b"7" or b"ALPHA" not in data[:4096].split(b"ENDHDR")[0]


def full_depth_bytes(data: bytes, kind: str) -> int:
    """Bytes a pixel may take when decoded with its alpha and full depth (an upper
    bound: four channels at the widest sample the format allows)."""
    if kind == "png":
        return 8 if data[24] == 16 else 4
    if kind == "pnm":
        return 12 if data[1:2] == b"F" else 4 if data[1:2] == b"f" else 8
    if kind == "tiff":
        return 16  # up to four 32-bit samples
    return 4  # BMP, WebP, GIF: 8-bit BGRA


_PLAIN: dict[str, Callable[[bytes], bool]] = {
    "jpeg": lambda data: True,
    "png": _png_plain,
    "bmp": lambda data: struct.unpack("<H", data[28:30])[0] < 32,
    "tiff": _tiff_plain,
    "webp": _webp_plain,
    "gif": lambda data: False,
    "pnm": _pnm_plain,
}


_READERS = {
    "png": _png,
    "jpeg": _jpeg,
    "bmp": _bmp,
    "tiff": _tiff,
    "webp": _webp,
    "gif": _gif,
    "pnm": _pnm,
}
