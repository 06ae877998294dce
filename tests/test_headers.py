"""tinynet.vision.headers through load_image: every accepted format's size is read
from its header and checked before decoding; other formats and special files are
refused with one line. The hostile files are made here, a few bytes each."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from tinynet.vision import ImageError, load_image
from tinynet.vision.headers import image_format, image_size

HUGE = 60_000  # a side: 60000 x 60000 = 3600 megapixels, 3.6 GB as grey bytes


def encode(img, ext):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def small():
    img = np.full((20, 30), 200, np.uint8)
    img[5:15, 10:20] = 30
    return img


# ------------------------------------------------ hostile headers, one per format


def png_bomb():
    return encode(np.full((8000, 8000), 255, np.uint8), ".png")


def jpeg_odd_markers():
    """A real JPEG whose frame header declares 60000x60000, behind fill bytes, a
    restart marker, a comment and an APP segment before the tables."""
    jpeg = encode(small(), ".jpg")
    sof = jpeg.index(b"\xff\xc0")
    jpeg = jpeg[: sof + 5] + struct.pack(">HH", HUGE, HUGE) + jpeg[sof + 9 :]
    extra = b"\xff\xff\xff\xfe\x00\x05hi!" + b"\xff\xe3\x00\x04ab" + b"\xff\xd0"
    return jpeg[:2] + extra + jpeg[2:]


def bmp_huge():
    bmp = bytearray(encode(small(), ".bmp"))
    bmp[18:26] = struct.pack("<ii", HUGE, -HUGE)  # negative height: top-down rows
    return bytes(bmp)


def bmp_os2_huge():
    header = b"BM" + struct.pack("<IHHI", 26 + 6, 0, 0, 26 + 6)
    core = struct.pack("<IHHHH", 12, HUGE, HUGE, 1, 24)
    return header + core + b"\x00" * 6


def tiff_with(tags, magic=b"II*\x00"):
    """A little-endian TIFF whose first directory holds ``tags`` (tag, type, value)."""
    ifd = struct.pack("<H", len(tags))
    for tag, typ, value in tags:
        packed = (
            struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
        )
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    return magic + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 64


def tiff_duplicate_tags(huge_first):
    """ImageWidth and ImageLength each given twice, one small and one huge: a
    decoder may keep either."""
    sizes = [(3, 30), (4, HUGE)][:: -1 if huge_first else 1]
    width, length = ([(tag, t, v) for t, v in sizes] for tag in (256, 257))
    return tiff_with([*width, *length, (258, 3, 8)])


def webp_huge_canvas():
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    vp8x += (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def gif_big_frame_on_small_screen():
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, HUGE, HUGE, 0) + b"\x02\x01\x00\x00"
    return screen + frame + b"\x3b"


HOSTILE = {
    "png": png_bomb,
    "jpeg": jpeg_odd_markers,
    "bmp": bmp_huge,
    "bmp-os2": bmp_os2_huge,
    "tiff-duplicate-tags-huge-first": lambda: tiff_duplicate_tags(True),
    "tiff-duplicate-tags-huge-last": lambda: tiff_duplicate_tags(False),
    "webp": webp_huge_canvas,
    "gif": gif_big_frame_on_small_screen,
    "pgm-with-comment": lambda: b"P5\n# a comment\n60000 # more\n60000\n255\n" + b"\0",
    "pbm": lambda: b"P4 60000 60000\n" + b"\0" * 8,
    "pam": lambda: b"P7\nWIDTH 60000\nHEIGHT 60000\nDEPTH 1\nMAXVAL 255\nENDHDR\n",
    "pfm": lambda: b"Pf\n60000 60000\n-1.0\n" + b"\0" * 8,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_huge_size_in_any_accepted_format_is_refused_from_the_header(kind):
    with pytest.raises(ImageError, match=r"megapixels, over the limit of 50"):
        load_image(HOSTILE[kind]())


def test_hostile_headers_cost_little_memory_under_an_address_space_cap(tmp_path):
    """In a child whose address space is capped at what it holds after the imports
    plus 300 MB, every hostile file is refused with an ImageError (an allocation
    would fail with MemoryError or cv2.error instead)."""
    for kind, make in HOSTILE.items():
        (tmp_path / f"{kind}.img").write_bytes(make())
    child = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        from tinynet.vision import ImageError, load_image
        vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                  if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 300 * 2**20,) * 2)
        for path in sorted(Path({str(tmp_path)!r}).iterdir()):
            try:
                load_image(path)
            except ImageError as exc:
                assert "over the limit" in str(exc), exc
            else:
                sys.exit(f"{{path.name}} was decoded")
        print("all refused")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "all refused" in out.stdout, out.stderr[-2000:]


# ------------------------------------------------ what is accepted still loads


@pytest.mark.parametrize("ext", [".pgm", ".pbm", ".pam", ".pnm"])
def test_netpbm_files_load(ext):
    img = small() if ext != ".pbm" else np.where(small() > 100, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(load_image(encode(img, ext)), img)


def test_a_float_pfm_is_stretched_to_eight_bits():
    img = small().astype(np.float32) / 255 * 4 - 1  # -1 .. 3, not 0 .. 1
    out = load_image(encode(img, ".pfm"))
    assert out.min() == 0 and out.max() == 255 and out[0, 0] > out[10, 15]


def test_a_gif_loads():
    colour = cv2.cvtColor(small(), cv2.COLOR_GRAY2BGR)
    ok, buf = cv2.imencode(".gif", colour)
    if not ok:
        pytest.skip("this OpenCV cannot write GIF")
    out = load_image(buf.tobytes())
    assert out.shape == (20, 30) and out[10, 15] < 100 < out[0, 0]


def test_headers_give_the_size_the_decoder_allocates():
    img = np.zeros((37, 53), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm", ".pam"):
        data = encode(img, ext)
        assert image_size(data, image_format(data)) == (53, 37), ext


# ------------------------------------------------ refused outright


@pytest.mark.parametrize("ext", [".ras", ".hdr", ".avif"])
def test_formats_off_the_list_are_refused_naming_the_accepted_ones(ext):
    img = small() if ext != ".hdr" else np.dstack([small()] * 3).astype(np.float32)
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    with pytest.raises(ImageError, match=r"not a readable image \(tinynet reads PNG"):
        load_image(buf.tobytes())


def test_bigtiff_and_headers_without_a_size_are_refused():
    with pytest.raises(ImageError, match="BigTIFF is not accepted"):
        load_image(tiff_with([(256, 3, 30), (257, 3, 20)], magic=b"II+\x00"))
    with pytest.raises(ImageError, match=r"corrupt TIFF header: no size"):
        load_image(tiff_with([(258, 3, 8)]))  # no width or length
    with pytest.raises(ImageError, match=r"corrupt JPEG header: no size"):
        load_image(b"\xff\xd8\xff\xe0\x00\x10JFIF")  # cut before any frame header
    with pytest.raises(ImageError, match=r"corrupt PNM header: no size"):
        load_image(b"P5\nnot numbers\n")


def test_special_files_given_as_images_are_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")  # reading it would never end
    cases = {
        fifo: "pipe.png: is a named pipe (FIFO), not an ordinary image file",
        zero: "zero.png: is a character device, not an ordinary image file",
        tmp_path: "is a directory, not an ordinary image file",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError, match=re.escape(message)):
            load_image(path)


def png_header(width, height, colour_type, depth=8):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4


@pytest.mark.parametrize(
    "header",
    [
        png_header(5000, 5000, 6),
        png_header(4000, 4000, 6, 16),
        tiff_with([(256, 3, 3000), (257, 3, 3000), (277, 3, 4), (338, 3, 2)]),
        b"PF\n3000 3000\n-1.0\n",
    ],
    ids=["rgba-25MP", "rgba16-16MP", "tiff-with-alpha-9MP", "pfm-colour-9MP"],
)
def test_images_decoded_with_alpha_or_float_samples_have_a_byte_budget(header):
    with pytest.raises(ImageError, match=r"transparency or float samples .* MB, over"):
        load_image(header)


def test_an_opaque_colour_png_decodes_straight_to_one_byte_a_pixel():
    """12 megapixels of 16-bit RGB would need 72 MB decoded as they are; in a child
    whose address space may grow by only 40 MB more, the image still loads."""
    rgb = np.full((3000, 4000, 3), 50000, np.uint16)
    rgb[1000:2000, 1000:3000] = 5000
    data = encode(rgb, ".png")
    child = textwrap.dedent(
        """
        import resource, sys
        from tinynet.vision import load_image
        data = sys.stdin.buffer.read()
        vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                  if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 40 * 2**20,) * 2)
        image = load_image(data)
        print(image.shape, image.dtype, image[0, 0], image[1500, 2000])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], input=data, capture_output=True, timeout=120
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().split() == ["(3000,", "4000)", "uint8", "195", "19"]


def test_a_gif_of_millions_of_tiny_blocks_is_refused_not_walked():
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    comment = b"\x21\xfe" + b"\x01a" * 1_100_000 + b"\x00"  # 2.2 MB of 1-byte blocks
    with pytest.raises(ImageError, match=r"corrupt GIF header: no size"):
        load_image(screen + comment + b"\x3b")


def test_a_jpeg_of_thousands_of_tiny_segments_is_refused_not_walked():
    tiny = b"\xff\xfe\x00\x02" * 20_000  # empty comments, then the frame header
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 20, 30)
    with pytest.raises(ImageError, match=r"corrupt JPEG header: no size"):
        load_image(b"\xff\xd8" + tiny + sof)
    assert image_size(b"\xff\xd8" + tiny[:400] + sof, "jpeg") == (30, 20)
