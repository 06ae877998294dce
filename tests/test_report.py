"""tinynet.vision.report: the read-and-report loop shared by the example and the CLI,
and OpenCV decoder failures surfacing as ImageError."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinynet.vision import ImageError, load_image, read_digits
from tinynet.vision.report import describe, figure_paths, read_and_report

# A PFM header with zero height: OpenCV's decoder asserts (cv2.error) instead of
# returning None.
ZERO_HEIGHT_PFM = b"PF\n30 0\n-1.0\n"


@pytest.fixture(scope="module")
def model():
    from tinynet.zoo import mnist_mlp

    return mnist_mlp(seed=0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    for name, text, w in (("seven.png", "7", 160), ("number.png", "42", 300)):
        img = np.full((200, w), 235, np.uint8)
        cv2.putText(img, text, (20, 160), cv2.FONT_HERSHEY_SIMPLEX, 5, 20, 12)
        cv2.imwrite(str(d / name), img)
    (d / "bad.pfm").write_bytes(ZERO_HEIGHT_PFM)
    return {p.name: str(p) for p in d.iterdir()}


def test_a_header_opencv_would_assert_on_is_an_image_error(tmp_path):
    # (OpenCV's PFM reader asserts on a zero height; the header check comes first.)
    with pytest.raises(ImageError, match=r"^<bytes>: image has zero size \(30x0\)"):
        load_image(ZERO_HEIGHT_PFM)
    path = tmp_path / "bad.pfm"
    path.write_bytes(ZERO_HEIGHT_PFM)
    with pytest.raises(ImageError, match="bad.pfm: image has zero size"):
        read_digits(path)


def test_text_report_counts_failures_and_keeps_going(model, files):
    out, err = io.StringIO(), io.StringIO()
    order = [files["seven.png"], files["bad.pfm"], files["number.png"]]
    failed = read_and_report(order, model, out=out, err=err)
    assert failed == 1
    expected = [describe(f, read_digits(f, model)) for f in order[::2]]
    assert out.getvalue() == "\n".join(expected) + "\n"
    assert err.getvalue() == (
        f"error: {files['bad.pfm']}: image has zero size (30x0)\n"
    )


def test_json_report_one_line_per_file_and_custom_text(model, files):
    out, err = io.StringIO(), io.StringIO()
    order = [files["bad.pfm"], files["number.png"]]
    assert read_and_report(order, model, as_json=True, single=True, out=out, err=err)
    bad, good = (json.loads(line) for line in out.getvalue().splitlines())
    assert bad["file"] == order[0] and bad["digits"] is None and bad["error"]
    assert good["error"] is None and len(good["digits"]) == 1
    assert err.getvalue() == ""
    out = io.StringIO()
    read_and_report(order[1:], model, out=out, text=lambda f, r: f"{f}={r.digits}")
    assert out.getvalue() == f"{order[1]}={read_digits(order[1], model).digits}\n"


def test_figure_paths():
    assert figure_paths("fig.png", ["a/x.jpg"]) == [Path("fig.png")]
    assert figure_paths("out/fig", ["a/x.jpg", "b/x.png", "y.png"]) == [
        Path("out/fig_x.png"),
        Path("out/fig_x_2.png"),
        Path("out/fig_y.png"),
    ]
