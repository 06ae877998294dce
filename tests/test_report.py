"""tinynet.vision.report: the read-and-report loop shared by the example and the CLI,
and OpenCV decoder failures surfacing as ImageError."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinynet.vision import ImageError, Reading, error_dict, load_image, read_digits
from tinynet.vision.reading import SURE_CONFIDENCE
from tinynet.vision.report import (
    describe,
    digit_titles,
    figure_paths,
    read_and_report,
)

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


def test_json_report_one_line_per_file(model, files):
    out, err = io.StringIO(), io.StringIO()
    order = [files["bad.pfm"], files["number.png"]]
    assert read_and_report(order, model, as_json=True, single=True, out=out, err=err)
    bad, good = (json.loads(line) for line in out.getvalue().splitlines())
    assert bad["file"] == order[0] and bad["digits"] is None and bad["error"]
    assert good["error"] is None and len(good["digits"]) == 1
    assert err.getvalue() == ""


class BrokenOn:
    """``model``, but its probabilities for the ``calls``-th predict (1-based) are
    ``value`` (NaN, infinity)."""

    def __init__(self, model, calls, value):
        self.model, self.calls, self.value, self.n = model, set(calls), value, 0
        self.input_shape = model.input_shape

    def predict(self, x, batch_size=256):
        self.n += 1
        probs = self.model.predict(x, batch_size=batch_size)
        return np.full_like(probs, self.value) if self.n in self.calls else probs


def strict_json(line: str):
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant} in {line}")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_probabilities_are_an_error_for_that_image(model, files, value):
    order = [files["seven.png"], files["number.png"], files["seven.png"]]
    out, err = io.StringIO(), io.StringIO()
    broken = BrokenOn(model, calls=[2], value=value)
    assert read_and_report(order, broken, as_json=True, out=out, err=err) == 1
    first, second, third = map(strict_json, out.getvalue().splitlines())
    assert first == third == read_digits(order[0], model).to_dict(order[0])
    assert second["digits"] is None and second["file"] == order[1]
    assert second["error"] == (
        f"{order[1]}: the model gave non-finite probabilities (NaN or infinity) "
        "for digit 1, 2: a fault of the model (check its weights)"
    )
    out, err = io.StringIO(), io.StringIO()
    broken = BrokenOn(model, calls=[2], value=value)
    assert read_and_report(order[:2], broken, out=out, err=err) == 1
    assert err.getvalue() == f"error: {second['error']}\n"
    assert out.getvalue() == describe(order[0], read_digits(order[0], model)) + "\n"


def test_a_figure_that_cannot_be_written_is_an_error_line(model, files, tmp_path):
    order = [files["seven.png"], files["number.png"]]
    (tmp_path / "a-file").write_text("not a folder")
    paths = [tmp_path / "a-file" / "a.png", tmp_path / "b.png"]
    out, err = io.StringIO(), io.StringIO()
    assert read_and_report(order, model, plot_paths=paths, out=out, err=err) == 1
    assert err.getvalue().startswith(
        f"error: {order[0]}: cannot write the figure {paths[0]}: "
    )
    assert err.getvalue().count("\n") == 1
    assert paths[1].is_file() and f"figure: {paths[1]}" in out.getvalue()


def test_figure_paths():
    assert figure_paths("fig.png", ["a/x.jpg"]) == [Path("fig.png")]
    assert figure_paths("out/fig", ["a/x.jpg", "b/x.png", "y.png"]) == [
        Path("out/fig_x.png"),
        Path("out/fig_x_2.png"),
        Path("out/fig_y.png"),
    ]


def reading_with(confidences: list[float], runner_up: int = 1) -> Reading:
    """A Reading of digit 0 per confidence, the rest of the mass on ``runner_up``."""
    k = len(confidences)
    probs = np.zeros((k, 10), np.float32)
    probs[:, 0] = confidences
    probs[:, runner_up] = 1 - np.asarray(confidences)
    return Reading(
        digits="0" * k,
        confidence=list(confidences),
        probabilities=probs,
        inputs=np.zeros((k, 28, 28), np.float32),
        boxes=[(0, 0, 1, 1)] * k,
        image=np.zeros((4, 4), np.uint8),
    )


def test_a_digit_under_the_threshold_is_not_sure_and_names_the_runner_up():
    low = SURE_CONFIDENCE - 0.05
    reading = reading_with([SURE_CONFIDENCE, low], runner_up=8)
    assert reading.sure == [True, False]
    assert [d for d, _ in reading.runner_up()] == [8, 8]
    record = reading.to_dict("x.png")
    assert record["sure"] == [True, False]
    assert record["runner_up"][1] == [8, pytest.approx(1 - low, abs=1e-6)]
    assert record["sure_threshold"] == SURE_CONFIDENCE
    text = describe("x.png", reading).splitlines()
    assert "not sure" not in text[1]
    assert f"not sure (runner-up 8 {1 - low:.3f})" in text[2]
    one = describe("y.png", reading_with([low], runner_up=3))
    assert one.startswith(f"y.png: 0  confidence {low:.3f}  not sure (runner-up 3 ")
    assert "not sure" not in describe("z.png", reading_with([SURE_CONFIDENCE]))


def test_error_records_have_the_same_keys_as_readings():
    assert set(error_dict("x.png", "bad")) == set(reading_with([0.5]).to_dict("x"))


def test_figure_titles_mark_the_digits_not_sure():
    reading = reading_with([SURE_CONFIDENCE, SURE_CONFIDENCE - 0.01], runner_up=6)
    assert digit_titles(reading) == ["0", "0? (or 6)"]
