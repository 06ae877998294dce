"""Augmentation: exactness of the warp, determinism, ranges, stroke changes."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.augment import Augmenter, affine_transform, augment_batch, dilate, erode

ZERO = dict(
    max_shift=0.0,
    max_rotation=0.0,
    scale_range=(1.0, 1.0),
    aspect_range=(1.0, 1.0),
    max_shear=0.0,
    stroke_prob=0.0,
)


def digits(n=8, seed=0, dtype=np.float32):
    """Blobby digit-like images: a few thick random strokes, centred, in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), dtype)
    for i in range(n):
        for _ in range(3):
            r0, c0 = rng.integers(8, 20, 2)
            r1, c1 = rng.integers(8, 20, 2)
            t = np.linspace(0, 1, 40)
            rr = np.round(r0 + t * (r1 - r0)).astype(int)
            cc = np.round(c0 + t * (c1 - c0)).astype(int)
            for dr in (0, 1):
                x[i, rr + dr, cc] = 1.0
                x[i, rr, cc + dr] = rng.uniform(0.5, 1.0)
    return x


def centre_of_mass(x):
    rows, cols = np.mgrid[: x.shape[1], : x.shape[2]]
    mass = x.sum(axis=(1, 2))
    return (
        (x * rows).sum(axis=(1, 2)) / mass,
        (x * cols).sum(axis=(1, 2)) / mass,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channel", [False, True])
def test_shape_dtype_range_and_input_untouched(dtype, channel):
    x = digits(dtype=dtype)
    if channel:
        x = x[..., None]
    before = x.copy()
    out = augment_batch(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(x, before)
    assert not np.array_equal(out, x)


def test_same_seed_same_output_different_seed_differs():
    x = digits(16)
    aug = Augmenter(stroke_prob=0.5)
    a = aug(x, np.random.default_rng(7))
    b = aug(x, np.random.default_rng(7))
    c = aug(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The generator moves on: two calls on one rng give two different batches.
    rng = np.random.default_rng(7)
    assert not np.array_equal(aug(x, rng), aug(x, rng))


def test_all_ranges_zero_is_exact_identity():
    rng = np.random.default_rng(3)
    x = rng.random((5, 28, 28), dtype=np.float32)
    x[:, 0, :] = 1.0  # full-intensity border pixels must survive as well
    np.testing.assert_array_equal(augment_batch(x, rng, **ZERO), x)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-1, 4), (0, 1)])
def test_integer_shift_moves_centre_of_mass_exactly(dx, dy):
    x = digits(4)
    m = np.zeros((4, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    m[:, :, 2] = (dx, dy)
    out = affine_transform(x, m)
    r0, c0 = centre_of_mass(x)
    r1, c1 = centre_of_mass(out)
    np.testing.assert_allclose(c1 - c0, dx, atol=1e-4)
    np.testing.assert_allclose(r1 - r0, dy, atol=1e-4)
    expected = np.zeros_like(x)
    expected[:, max(dy, 0) : 28 + min(dy, 0), max(dx, 0) : 28 + min(dx, 0)] = x[
        :, max(-dy, 0) : 28 - max(dy, 0), max(-dx, 0) : 28 - max(dx, 0)
    ]
    np.testing.assert_array_equal(out, expected)


def test_random_shift_is_bounded_and_used():
    x = digits(64)
    out = augment_batch(x, np.random.default_rng(1), **{**ZERO, "max_shift": 2.0})
    (r0, c0), (r1, c1) = centre_of_mass(x), centre_of_mass(out)
    assert np.all(np.abs(c1 - c0) <= 2.0 + 1e-3) and np.all(np.abs(r1 - r0) <= 2.001)
    assert np.abs(c1 - c0).max() > 1.0 and np.abs(r1 - r0).max() > 1.0


def test_positive_rotation_is_counter_clockwise():
    x = digits(3)
    aug = Augmenter(**{**ZERO, "max_rotation": 90.0})
    u = np.zeros((3, 8))
    u[:, :6] = 0.5  # the middle of every range: no change ...
    u[:, 2] = 1.0  # ... except the rotation, at +max_rotation
    out = affine_transform(x, aug.matrices(3, 28, 28, u))
    np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)


def test_rotation_roughly_preserves_ink():
    x = digits(32)
    out = augment_batch(x, np.random.default_rng(2), **{**ZERO, "max_rotation": 12.0})
    ratio = out.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)
    assert not np.allclose(out, x)


def test_scale_changes_ink_by_the_area_factor():
    x = digits(4)
    aug = Augmenter(**{**ZERO, "scale_range": (1.2, 1.2)})
    out = aug(x, np.random.default_rng(0))
    ratio = out.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    np.testing.assert_allclose(ratio, 1.44, rtol=0.03)


def test_dilate_and_erode_known_results():
    x = np.zeros((1, 6, 6), np.float32)
    x[0, 2, 3] = 0.7
    d3 = dilate(x, 3)
    assert d3[0, 1:4, 2:5].min() == np.float32(0.7) and d3.sum() == np.float32(6.3)
    d2 = dilate(x, 2)
    assert set(zip(*np.nonzero(d2[0]), strict=True)) == {(1, 2), (1, 3), (2, 2), (2, 3)}
    square = np.zeros((1, 6, 6), np.float32)
    square[0, 1:3, 1:3] = 1.0
    e2 = erode(square, 2)
    assert e2.sum() == 1.0 and e2[0, 1, 1] == 1.0
    assert erode(square, 3).sum() == 0.0
    assert erode(x[..., None], 2).shape == (1, 6, 6, 1)


def test_strokes_get_thicker_and_thinner():
    x = digits(200)
    aug = Augmenter(**{**ZERO, "stroke_prob": 1.0})
    ratio = aug(x, np.random.default_rng(0)).sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert np.all((ratio > 1.1) | (ratio < 0.9) | (ratio == 1.0))
    thicker, thinner = np.mean(ratio > 1.1), np.mean(ratio < 0.9)
    assert 0.35 < thicker < 0.65 and 0.3 < thinner < 0.65


def test_thin_digit_is_not_erased():
    x = np.zeros((8, 28, 28), np.float32)
    x[:, 5:23, 14] = 1.0  # a one-pixel pen line: erosion would remove it
    aug = Augmenter(**{**ZERO, "stroke_prob": 1.0, "thicken_sizes": (3,)})
    out = aug(x, np.random.default_rng(0))
    assert np.all(out.sum(axis=(1, 2)) >= x.sum(axis=(1, 2)))


def test_get_config_round_trips_through_json():
    aug = Augmenter(max_shift=1.5, scale_range=(0.8, 1.0), thicken_sizes=(3,))
    cfg = json.loads(json.dumps(aug.get_config()))
    assert Augmenter(**cfg).get_config() == cfg
    x = digits(4)
    np.testing.assert_array_equal(
        aug(x, np.random.default_rng(5)), Augmenter(**cfg)(x, np.random.default_rng(5))
    )


def test_empty_batch():
    out = augment_batch(np.zeros((0, 28, 28), np.float32), np.random.default_rng(0))
    assert out.shape == (0, 28, 28)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"max_shift": -1}, ValueError),
        ({"max_rotation": "big"}, TypeError),
        ({"scale_range": (1.1, 0.9)}, ValueError),
        ({"scale_range": (0.0, 1.0)}, ValueError),
        ({"aspect_range": 1.0}, TypeError),
        ({"stroke_prob": 1.5}, ValueError),
        ({"thicken_sizes": (4,)}, ValueError),
    ],
)
def test_bad_settings_raise(kwargs, err):
    with pytest.raises(err, match="Augmenter"):
        Augmenter(**kwargs)


def test_bad_inputs_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="float32 or float64.*uint8"):
        augment_batch(np.zeros((2, 28, 28), np.uint8), rng)
    with pytest.raises(ValueError, match=r"\(N, H, W\).*\(28, 28\)"):
        augment_batch(np.zeros((28, 28), np.float32), rng)
    with pytest.raises(ValueError, match=r"\(2, 28, 28, 3\)"):
        augment_batch(np.zeros((2, 28, 28, 3), np.float32), rng)
    with pytest.raises(TypeError, match="Generator"):
        augment_batch(np.zeros((2, 28, 28), np.float32), 0)
    with pytest.raises(TypeError, match="numpy array"):
        augment_batch([[0.0]], rng)
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        affine_transform(np.zeros((2, 5, 5), np.float32), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="singular"):
        affine_transform(np.zeros((1, 5, 5), np.float32), np.zeros((1, 2, 3)))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shift=st.floats(0, 6),
    rot=st.floats(0, 45),
    lo=st.floats(0.5, 1.0),
    hi=st.floats(1.0, 1.6),
    shear=st.floats(0, 30),
    stroke=st.floats(0, 1),
)
def test_any_settings_keep_range_and_shape(seed, shift, rot, lo, hi, shear, stroke):
    x = digits(6, seed=seed % 100)
    aug = Augmenter(shift, rot, (lo, hi), (lo, hi), shear, stroke)
    out = aug(x, np.random.default_rng(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1


def test_fill_frame_stretches_the_ink_box_to_a_square_within_the_cap():
    x = np.zeros((2, 28, 28), np.float32)
    x[0, 6:22, 10:18] = 1.0  # 16 tall, 8 wide: stretched 2x in x
    x[1, 4:24, 13:15] = 1.0  # 20 tall, 2 wide: the 10x stretch is capped at 2.5
    still = dict(max_shift=0, max_rotation=0, scale_range=(1, 1),
                 aspect_range=(1, 1), max_shear=0, stroke_prob=0)  # fmt: skip
    out = Augmenter(**still, fill_prob=1.0)(x, np.random.default_rng(0))

    def box(img):
        rows, cols = np.nonzero(img > 0.5)
        return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1

    assert box(out[0]) == (16, 16)
    height, width = box(out[1])
    assert height == 20 and 4 <= width <= 6  # 2 px x 2.5, give or take a pixel
    same = Augmenter(**still, fill_prob=0.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(same, x)
