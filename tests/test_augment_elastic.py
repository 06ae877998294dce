"""Elastic distortion: the smoothing, the field's scale, its use in the warp."""

import numpy as np
import pytest

from tinynet.augment import Augmenter, affine_transform
from tinynet.augment_elastic import elastic_displacements, gaussian_matrix

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
NO_AFFINE = dict(max_shift=0, max_rotation=0, scale_range=(1, 1), aspect_range=(1, 1))


def digits(n, seed=0):
    """(n, 28, 28) float32 images of two random thick bars, away from the border."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for image in x:
        r, c = rng.integers(6, 18, 2)
        image[r : r + 3, 6:22] = rng.uniform(0.5, 1.0)
        image[6:22, c : c + 3] = 1.0
    return x


def test_gaussian_matrix_rows_are_normalised_and_peak_on_the_diagonal():
    g = gaussian_matrix(28, 4.0)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(g.argmax(axis=1) == np.arange(28))
    # Away from the border a row is the same kernel, shifted.
    np.testing.assert_allclose(g[14, 4:25], g[13, 3:24], rtol=1e-12)


def test_a_uniform_draw_gives_a_uniform_field_scaled_by_alpha():
    u = np.full((2, 28, 28, 2), 0.75)
    field = elastic_displacements(u, alpha=10.0, sigma=3.0)
    np.testing.assert_allclose(field, 10.0 * (2 * 0.75 - 1), rtol=1e-12)


def test_smoothing_shrinks_the_noise_more_for_a_wider_gaussian():
    u = np.random.default_rng(0).random((16, 28, 28, 2))
    narrow = elastic_displacements(u, alpha=1.0, sigma=1.0).std()
    wide = elastic_displacements(u, alpha=1.0, sigma=4.0).std()
    assert wide < narrow < (2 * u - 1).std()


def test_a_constant_displacement_shifts_the_image_by_whole_pixels():
    x = digits(3)
    displacement = np.zeros((3, 28, 28, 2))
    displacement[..., 0] = 2.0  # read two columns to the right: ink moves left
    out = affine_transform(x, np.repeat(IDENTITY[None], 3, axis=0), displacement)
    expected = np.zeros_like(x)
    expected[:, :, :-2] = x[:, :, 2:]
    np.testing.assert_array_equal(out, expected)


def test_displacement_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"displacement of shape \(2, 28, 28, 2\)"):
        affine_transform(digits(2), np.repeat(IDENTITY[None], 2, 0), np.zeros((2, 28)))


def test_elastic_draws_come_last_so_other_changes_are_unchanged():
    # With alpha 0 the field is zero: the batch must equal the one without elastic,
    # although more random numbers were drawn after the others.
    x, labels = digits(16), np.arange(16) % 10
    plain = Augmenter(convention_prob=0.5)
    with_zero_field = Augmenter(convention_prob=0.5, elastic_prob=1.0, elastic_alpha=0)
    np.testing.assert_array_equal(
        plain(x, np.random.default_rng(3), labels),
        with_zero_field(x, np.random.default_rng(3), labels),
    )


def test_elastic_prob_selects_the_images_and_keeps_the_range():
    x = digits(64)
    out = Augmenter(**NO_AFFINE, max_shear=0, stroke_prob=0, elastic_prob=0.5)(
        x, np.random.default_rng(0)
    )
    changed = np.any(out != x, axis=(1, 2))
    assert 0 < changed.sum() < 64
    assert out.min() >= 0.0 and out.max() <= 1.0
    # A smooth field moves ink about; it compresses or stretches some strokes
    # (Simard's alpha 34 changes the ink by up to ~60%) but keeps the digit.
    ink_ratio = out[changed].sum(axis=(1, 2)) / x[changed].sum(axis=(1, 2))
    assert np.all((ink_ratio > 0.5) & (ink_ratio < 2.0))


@pytest.mark.parametrize(
    "kwargs", [{"elastic_prob": 1.5}, {"elastic_alpha": -1}, {"elastic_sigma": 0}]
)
def test_bad_elastic_settings_raise(kwargs):
    with pytest.raises(ValueError, match="Augmenter: elastic"):
        Augmenter(**kwargs)
