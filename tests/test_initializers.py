"""Initializers: Keras fan rule, variances, truncation, determinism, registry."""

import numpy as np
import pytest

from tinynet import initializers
from tinynet.initializers import compute_fans

TRUNC = 0.87962566103423978


@pytest.mark.parametrize(
    ("shape", "fans"),
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((784, 128), (784, 128)),
        ((3, 3, 1, 32), (9, 288)),
        ((5, 3, 16, 8), (240, 120)),
    ],
)
def test_compute_fans_follows_keras(shape, fans):
    assert compute_fans(shape) == fans


# (initializer, expected variance of the weights) for a (fan_in, fan_out) weight.
VARIANCE = {
    "glorot_uniform": lambda fi, fo: 2.0 / (fi + fo),
    "glorot_normal": lambda fi, fo: 2.0 / (fi + fo),
    "he_uniform": lambda fi, fo: 2.0 / fi,
    "he_normal": lambda fi, fo: 2.0 / fi,
}


@pytest.mark.parametrize("name", sorted(VARIANCE))
@pytest.mark.parametrize("shape", [(400, 300), (3, 3, 32, 64)])
def test_variance_matches_the_definition(name, shape):
    fan_in, fan_out = compute_fans(shape)
    w = initializers.get(name)(shape, np.random.default_rng(0), np.float64)
    target = VARIANCE[name](fan_in, fan_out)
    assert w.shape == shape
    # ~10^5 samples: the sample variance is within ~1% of the truth; allow 3%.
    assert abs(w.var() / target - 1.0) < 0.03
    assert abs(w.mean()) < 0.02 * np.sqrt(target)


@pytest.mark.parametrize("name", ["glorot_uniform", "he_uniform"])
def test_uniform_limits(name):
    shape = (300, 200)
    w = initializers.get(name)(shape, np.random.default_rng(1), np.float64)
    fan_in, fan_out = compute_fans(shape)
    limit = np.sqrt(3.0 * VARIANCE[name](fan_in, fan_out))
    assert np.abs(w).max() <= limit
    # A uniform fills its range: the extremes come within 1% of the limit.
    assert np.abs(w).max() > 0.99 * limit


@pytest.mark.parametrize("name", ["glorot_normal", "he_normal"])
def test_normal_is_truncated_at_two_stddevs(name):
    shape = (300, 200)
    w = initializers.get(name)(shape, np.random.default_rng(2), np.float64)
    fan_in, fan_out = compute_fans(shape)
    std = np.sqrt(VARIANCE[name](fan_in, fan_out)) / TRUNC
    assert np.abs(w).max() <= 2.0 * std
    # An untruncated normal would put ~4.6% of 60000 samples beyond 2 std, and
    # truncating without redrawing would pile them up at the bound.
    assert np.abs(w).max() > 1.98 * std
    assert np.mean(np.abs(w) > 1.9 * std) < 0.02


@pytest.mark.parametrize("name", sorted(initializers.INITIALIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_shape_and_determinism(name, dtype):
    init = initializers.get(name)
    a = init((5, 4), np.random.default_rng(3), dtype)
    b = init((5, 4), np.random.default_rng(3), dtype)
    c = init((5, 4), np.random.default_rng(4), dtype)
    assert a.dtype == dtype and a.shape == (5, 4)
    assert np.array_equal(a, b)
    if name not in ("zeros", "ones"):
        assert not np.array_equal(a, c)


def test_float32_default_and_constant_initializers():
    rng = np.random.default_rng(0)
    assert initializers.glorot_uniform((2, 3), rng).dtype == np.float32
    assert np.array_equal(initializers.zeros((2, 3), rng), np.zeros((2, 3)))
    assert np.array_equal(initializers.ones((4,), rng), np.ones(4))


def test_float32_and_float64_draw_the_same_weights():
    w32 = initializers.he_normal((6, 5), np.random.default_rng(7), np.float32)
    w64 = initializers.he_normal((6, 5), np.random.default_rng(7), np.float64)
    np.testing.assert_allclose(w32, w64, rtol=1e-6)


def test_get_accepts_callables_and_rejects_unknown_names():
    assert initializers.get("he_normal") is initializers.he_normal
    assert initializers.get(initializers.zeros) is initializers.zeros
    with pytest.raises(ValueError, match="glorot_uniform") as err:
        initializers.get("kaiming")
    assert "kaiming" in str(err.value)
    with pytest.raises(TypeError):
        initializers.get(3)


def test_serialize_names_registered_functions_only():
    assert initializers.serialize(initializers.he_uniform) == "he_uniform"
    assert initializers.serialize("zeros") == "zeros"
    with pytest.raises(ValueError, match="not registered"):
        initializers.serialize(lambda shape, rng, dtype=np.float32: np.ones(shape))


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        initializers.glorot_uniform((2, 2), 0)
