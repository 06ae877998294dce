"""Moment-based deskewing (tinynet.deskew) and the readers of deskewing models."""

import base64
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import tinynet
from tinynet.augment import affine_transform
from tinynet.deskew import (
    MAX_SLANT,
    Deskewed,
    as_read_by,
    deskew,
    deskew_pixels,
    reads_deskewed,
    slant,
)
from tinynet.ensemble import Ensemble
from tinynet.vision import read_digits


def upright_digit() -> np.ndarray:
    """(28, 28) float32: a '1'-like upright stroke with a foot, symmetric about its
    centre column, so its slant is exactly 0."""
    x = np.zeros((28, 28), np.float32)
    x[5:23, 13:16] = 1.0  # stem
    x[21:23, 10:19] = 1.0  # foot
    x[4:23, 12] = x[4:23, 16] = 0.5  # soft edges
    return x


def sheared(x: np.ndarray, s: float) -> np.ndarray:
    """``x`` (N, H, W) with each row moved ``s`` columns per row below the middle."""
    n, h, _ = x.shape
    maps = np.zeros((n, 2, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = 1.0
    maps[:, 0, 1] = s
    maps[:, 0, 2] = -s * (h - 1) / 2
    out: np.ndarray = affine_transform(x, maps)
    return out


def row_centres(x: np.ndarray) -> np.ndarray:
    """Ink-weighted centre column of each row of ``x`` (H, W) that has ink."""
    ink = x.sum(axis=1)
    rows = ink > 0.5
    return (x[rows] @ np.arange(x.shape[1])) / ink[rows]


def test_a_sheared_digit_comes_back_upright():
    digit = upright_digit()[None]
    for s in (0.35, -0.35):
        leaning = sheared(digit, s)
        assert slant(leaning)[0] == pytest.approx(s, abs=0.02)
        straight = deskew(leaning)
        assert abs(slant(straight)[0]) < 0.01
        # Every row's ink is back over the same column (the stem is vertical);
        # leaning, the rows' centres spread over 0.35 * 18 rows ~ 6 columns.
        assert np.ptp(row_centres(leaning[0])) > 5
        assert np.ptp(row_centres(straight[0])) < 0.6
        # ... and the image is the upright one, up to the blur of two resamplings.
        assert np.abs(straight - digit).sum() < 0.25 * digit.sum()


def test_the_centre_of_mass_stays_put_and_no_ink_is_lost():
    rng = np.random.default_rng(0)
    digit = sheared(upright_digit()[None], 0.3)
    digit = np.roll(digit, (int(rng.integers(-3, 4)), 2), axis=(1, 2))
    out = deskew(digit)
    cols = np.arange(28)
    assert (out[0].sum(axis=0) @ cols) / out.sum() == pytest.approx(
        (digit[0].sum(axis=0) @ cols) / digit.sum(), abs=0.05
    )
    assert out.sum() == pytest.approx(digit.sum(), rel=1e-4)


def test_an_upright_digit_and_a_blank_image_are_unchanged():
    x = np.stack([upright_digit(), np.zeros((28, 28), np.float32)])
    x[1, 10, 3:20] = 1.0  # and a single row of ink: no vertical extent to measure
    x = np.concatenate([x, np.zeros((1, 28, 28), np.float32)])
    np.testing.assert_array_equal(deskew(x), x)
    np.testing.assert_array_equal(slant(x), 0.0)


def lambda_one() -> np.ndarray:
    """(28, 28): an upright stem with a long entry stroke from the lower left (a 1
    as some European writers draw it), 30 degrees above horizontal, anti-aliased."""
    x = np.zeros((28 * 4, 28 * 4), np.float32)
    x[4 * 5 : 4 * 23, 4 * 14 : 4 * 16] = 1.0  # stem, 2 px wide
    for t in np.linspace(0, 1, 400):  # stroke from (19, 1) up to the stem at (11, 14)
        r, c = int(4 * (19 - 8 * t)), int(4 * (1 + 13 * t))
        x[r : r + 8, c : c + 8] = 1.0
    small: np.ndarray = x.reshape(28, 4, 28, 4).mean(axis=(1, 3))
    return small


@pytest.mark.parametrize("s", [0.3, -0.3])
def test_the_strokes_measure_the_lean_of_upright_strokes(s):
    digit = upright_digit()[None]
    leaning = sheared(digit, s)
    assert slant(leaning, by="strokes")[0] == pytest.approx(s, abs=0.05)
    assert abs(slant(deskew(leaning, by="strokes"), by="strokes")[0]) < 0.05
    np.testing.assert_array_equal(deskew(digit, by="strokes"), digit)


def test_an_entry_stroke_tilts_the_moments_but_not_the_strokes():
    one = lambda_one()[None]
    assert slant(one)[0] < -0.3  # the principal axis leans with the entry stroke
    assert abs(slant(one, by="strokes")[0]) < 0.05  # the stem is upright
    stem = slice(13, 17)  # so deskewing by strokes leaves the stem where it is
    kept = deskew(one, by="strokes")[0, 6:20, stem].sum()
    assert kept == pytest.approx(one[0, 6:20, stem].sum(), rel=0.05)
    assert deskew(one)[0, 6:20, stem].sum() < 0.8 * kept  # the moments shear it


def test_an_unknown_slant_measure_is_refused():
    with pytest.raises(ValueError, match="by must be one of"):
        deskew(np.zeros((1, 28, 28), np.float32), by="hough")


def test_the_shear_is_clipped_at_max_slant():
    leaning = sheared(upright_digit()[None], 0.8)
    assert slant(deskew(leaning))[0] == pytest.approx(0.8 - MAX_SLANT, abs=0.03)
    assert slant(deskew(leaning, max_slant=1.0))[0] == pytest.approx(0.0, abs=0.01)
    np.testing.assert_array_equal(deskew(leaning, max_slant=0), leaning)


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 28, 28, 1), (3, 784), (3, 16, 20)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_dtypes_are_kept(shape, dtype):
    rng = np.random.default_rng(1)
    x = (rng.random(shape) < 0.2).astype(dtype)
    out = deskew(x)
    assert out.shape == shape and out.dtype == dtype
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="float32 or float64"):
        deskew(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        deskew(np.zeros((28, 28), np.float32))
    with pytest.raises(ValueError, match="max_slant"):
        deskew(np.zeros((1, 28, 28), np.float32), max_slant=-1)
    with pytest.raises(TypeError, match="uint8"):
        deskew_pixels(np.zeros((1, 28, 28), np.float32))


def test_deskew_pixels_is_deskew_in_bytes():
    x = (sheared(upright_digit()[None], 0.3) * 255).round().astype(np.uint8)
    out = deskew_pixels(x)
    assert out.dtype == np.uint8 and out.shape == x.shape
    expected = deskew(x / np.float32(255)) * 255
    assert np.abs(out - expected).max() <= 0.5 + 1e-3


def test_deskewed_augments_then_deskews():
    calls = []

    class ByLabel:
        uses_labels = True

        def __call__(self, x, rng, labels):
            calls.append(labels)
            return sheared(x, 0.3)

    x = np.repeat(upright_digit()[None], 2, axis=0)
    labels = np.array([1, 7])
    transform = Deskewed(ByLabel())
    assert transform.uses_labels
    out = transform(x, np.random.default_rng(0), labels)
    np.testing.assert_array_equal(calls[0], labels)
    assert np.abs(slant(out)).max() < 0.01
    alone = Deskewed()
    assert not alone.uses_labels
    np.testing.assert_array_equal(alone(x, np.random.default_rng(0)), deskew(x))


# ------------------------------------------------------------------ the readers
def slanted_photo() -> np.ndarray:
    """A grey image (dark ink on white) of a digit leaning right."""
    ink = sheared(upright_digit()[None], -0.4)[0]
    big = np.kron(ink, np.ones((6, 6), np.float32))
    return (255 - 255 * big).astype(np.uint8)


def test_metadata_says_whether_a_model_reads_deskewed_digits(tmp_path):
    model = tinynet.load_pretrained("mnist")
    assert reads_deskewed(model) is None  # older files read as before
    x = sheared(upright_digit()[None], 0.3)
    assert as_read_by(model, x) is x
    model.metadata["deskew"] = 0.5
    path = tmp_path / "deskewing.npz"
    model.save(path)
    loaded = tinynet.load_model(path)
    assert reads_deskewed(loaded) == 0.5
    np.testing.assert_array_equal(as_read_by(loaded, x), deskew(x, 0.5))
    loaded.metadata["deskew_by"] = "strokes"
    np.testing.assert_array_equal(as_read_by(loaded, x), deskew(x, 0.5, by="strokes"))
    loaded.metadata["deskew_by"] = "hough"
    with pytest.raises(ValueError, match="'deskew_by' must be one of"):
        as_read_by(loaded, x)
    loaded.metadata["deskew"] = "yes"
    with pytest.raises(ValueError, match="'deskew' must be a slant"):
        reads_deskewed(loaded)


def test_read_digits_deskews_for_a_model_that_asks():
    plain = tinynet.load_pretrained("mnist")
    deskewing = tinynet.load_pretrained("mnist")
    deskewing.metadata["deskew"] = MAX_SLANT
    image = slanted_photo()
    as_is = read_digits(image, plain, multi=False)
    upright = read_digits(image, deskewing, multi=False)
    assert slant(as_is.inputs)[0] < -0.2  # the reader's input leans
    assert abs(slant(upright.inputs)[0]) < 0.02  # the network saw it upright
    np.testing.assert_allclose(upright.inputs, deskew(as_is.inputs), atol=1e-6)
    expected = plain.predict(upright.inputs.reshape(-1, 28, 28, 1))
    np.testing.assert_allclose(upright.probabilities, expected, rtol=1e-5, atol=1e-6)


def test_an_ensemble_deskews_for_the_members_that_ask():
    plain = tinynet.load_pretrained("mnist")
    deskewing = tinynet.load_pretrained("mnist")
    deskewing.metadata["deskew"] = MAX_SLANT
    x = sheared(upright_digit()[None], 0.4).reshape(1, 28, 28, 1)
    pair = Ensemble([plain, deskewing])
    expected = (plain.predict(x) + plain.predict(deskew(x))) / 2
    np.testing.assert_allclose(pair.predict(x), expected, rtol=1e-5, atol=1e-6)
    pixels = np.rint(x * 255).astype(np.uint8)  # and with an input scale
    scaled = pair.predict(pixels, input_scale=1 / 255)
    np.testing.assert_allclose(scaled, expected, atol=2e-3)


@pytest.fixture
def deskewing_file(tmp_path):
    """The shipped CNN saved as a model that reads deskewed digits."""
    model = tinynet.load_pretrained("mnist")
    model.metadata["deskew"] = MAX_SLANT
    path = tmp_path / "deskewing.npz"
    model.save(path)
    return path


def test_tinynet_predict_deskews_for_a_model_that_asks(deskewing_file, tmp_path):
    image = tmp_path / "slanted.png"
    cv2.imwrite(str(image), slanted_photo())
    command = [sys.executable, "-m", "tinynet.cli", "predict", str(image)]
    command += ["--model", str(deskewing_file), "--single", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    reading = read_digits(str(image), tinynet.load_model(deskewing_file), multi=False)
    assert line == json.loads(json.dumps(reading.to_dict(str(image))))
    # ... which is the plain network reading the reader's input deskewed.
    network = tinynet.load_pretrained("mnist")
    plain = read_digits(str(image), network, multi=False)
    upright = network.predict(deskew(plain.inputs).reshape(-1, 28, 28, 1))
    np.testing.assert_allclose(line["probabilities"], upright, atol=1e-6)


def test_the_web_server_deskews_for_a_model_that_asks(deskewing_file):
    from serve_helpers import request, serving

    model = tinynet.load_model(deskewing_file)
    data = cv2.imencode(".png", slanted_photo())[1].tobytes()
    with serving(model) as server:
        path = "/api/predict?single=1&inputs=1&file=slanted.png"
        status, _, out = request(server, "POST", path, body=data)
    assert status == 200
    reading = read_digits(data, model, multi=False)
    np.testing.assert_allclose(out["probabilities"], reading.probabilities, atol=1e-6)
    png = base64.b64decode(out["inputs"][0].split(",", 1)[1])
    seen = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) / 255.0
    assert abs(slant(seen[None])[0]) < 0.03  # the network saw the digit upright
