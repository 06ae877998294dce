"""IDX parsing: round trips and every kind of corrupt file, on tiny files."""

import gzip
import struct

import numpy as np
import pytest

from tinynet.datasets.idx import (
    CorruptFileError,
    encode_idx,
    parse_images,
    parse_labels,
    read_payload,
)


def _write(path, data: bytes, gz: bool):
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 4], dtype=np.uint8)
    # Gzip is detected from the content, so the file name says nothing.
    pi = _write(tmp_path / "images", encode_idx(images), gz)
    pl = _write(tmp_path / "labels", encode_idx(labels), gz)
    got_images = parse_images(read_payload(pi))
    got_labels = parse_labels(read_payload(pl))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.flags.writeable


def test_bad_magic_names_file_and_both_numbers(tmp_path):
    labels = encode_idx(np.zeros(4, np.uint8))
    p = _write(tmp_path / "swapped.gz", labels, True)
    with pytest.raises(CorruptFileError, match=r"swapped\.gz.*magic.*2051.*2049"):
        parse_images(read_payload(p))


def test_truncated_payload(tmp_path):
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))[:-10]
    p = _write(tmp_path / "short", data, False)
    with pytest.raises(CorruptFileError, match=r"short.*truncated"):
        parse_images(read_payload(p))


def test_trailing_bytes(tmp_path):
    data = encode_idx(np.zeros(5, np.uint8)) + b"\x00"
    p = _write(tmp_path / "long", data, False)
    with pytest.raises(CorruptFileError, match=r"long.*trailing"):
        parse_labels(read_payload(p))


def test_header_shorter_than_header(tmp_path):
    p = _write(tmp_path / "tiny", b"\x00\x00\x08", False)
    with pytest.raises(CorruptFileError, match=r"tiny.*header"):
        parse_labels(read_payload(p))


def test_count_in_header_does_not_match_data(tmp_path):
    body = np.zeros((3, 28, 28), np.uint8).tobytes()
    header = struct.pack(">IIII", 2051, 4, 28, 28)  # claims 4 images, holds 3
    p = _write(tmp_path / "count", header + body, True)
    with pytest.raises(CorruptFileError, match=r"count.*4x28x28"):
        parse_images(read_payload(p))


def test_image_dims_must_be_28x28(tmp_path):
    p = _write(tmp_path / "dims", encode_idx(np.zeros((2, 32, 32), np.uint8)), True)
    with pytest.raises(CorruptFileError, match=r"dims.*32x32.*28x28"):
        parse_images(read_payload(p))
    assert parse_images(read_payload(p), shape=None).shape == (2, 32, 32)


def test_label_out_of_range(tmp_path):
    p = _write(tmp_path / "lab", encode_idx(np.array([1, 2, 10, 3], np.uint8)), True)
    with pytest.raises(CorruptFileError, match=r"lab.*label 10 at index 2"):
        parse_labels(read_payload(p))


def test_broken_gzip(tmp_path):
    good = gzip.compress(encode_idx(np.zeros(100, np.uint8)), mtime=0)
    p = tmp_path / "cut.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.gz.*gzip"):
        read_payload(p)
    p.write_bytes(good[:-4] + b"\xff\xff\xff\xff")  # wrong length trailer
    with pytest.raises(CorruptFileError, match=r"cut\.gz.*gzip"):
        read_payload(p)


def test_encode_rejects_wrong_arrays():
    with pytest.raises(ValueError, match="uint8"):
        encode_idx(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_idx(np.zeros(3, np.float32))
