"""Losses: values vs direct formulas, gradients, stability, validation, registry."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_harness import GRADCHECK_SETTINGS

from tinynet import losses
from tinynet.gradcheck import check_loss
from tinynet.losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy

TOL = 1e-6
# Finite-difference step. Where a prediction nearly equals its (smoothed or soft)
# target the true gradient cancels to ~1e-5 and roundoff decides a max-relative-
# error check; over 1500 random cross-entropy cases the failure rate of a correct
# gradient was 2.1% with gradcheck's default h = 1e-6 and 0.07% with h = 3e-5.
EPS = 3e-5


def _logits_and_labels(seed, n, c, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)) * scale, rng.integers(0, c, n)


def _one_hot(labels, c):
    return np.eye(c)[labels]


# ----------------------------------------------------------------- gradients


@GRADCHECK_SETTINGS
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 6),
    smoothing=st.sampled_from([0.0, 0.1, 0.3]),
    target_kind=st.sampled_from(["labels", "one_hot", "soft"]),
    seed=st.integers(0, 2**16),
)
def test_softmax_cross_entropy_gradient(n, c, smoothing, target_kind, seed):
    z, labels = _logits_and_labels(seed, n, c)
    if target_kind == "labels":
        target = labels
    elif target_kind == "one_hot":
        target = _one_hot(labels, c)
    else:
        target = np.random.default_rng(seed + 1).dirichlet(np.ones(c), n)
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    assert check_loss(loss, z, target, eps=EPS) < TOL


@given(
    n=st.integers(1, 40),
    c=st.integers(2, 12),
    smoothing=st.sampled_from([0.0, 0.1, 0.3]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None, derandomize=True)
def test_labels_kernel_matches_its_twin_and_the_loss(n, c, smoothing, dtype, seed):
    """The one-pass kernel on integer labels (what the plan's softmax + cross-entropy
    step runs) against its reference twin and the loss's NumPy formula."""
    from tinynet.kernels import reference
    from tinynet.kernels.losses import softmax_cross_entropy_labels

    z, labels = _logits_and_labels(seed, n, c, scale=5.0)
    z = z.astype(dtype)
    dt = z.dtype.type
    off = dt(smoothing / c)
    on = dt(dt(1 - smoothing) + off)
    dz, dz_ref = np.empty_like(z), np.empty_like(z)
    value = softmax_cross_entropy_labels(z, labels, on, off, dz)
    value_ref = reference.softmax_cross_entropy_labels(z, labels, on, off, dz_ref)
    value_spec, grad_spec = SoftmaxCrossEntropy(label_smoothing=smoothing)(z, labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert dz.dtype == grad_spec.dtype == dtype
    for v, g in ((value_ref, dz_ref), (value_spec, grad_spec)):
        np.testing.assert_allclose(value, v, rtol=rtol)
        np.testing.assert_allclose(dz, g, rtol=rtol, atol=rtol / n)
    # Non-contiguous logits and other integer types give the same through the loss.
    wide = np.zeros((n, 2 * c), dtype)
    wide[:, ::2] = z
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    value_2, grad_2 = loss(wide[:, ::2], labels.astype(np.int32))
    assert value_2 == value_spec
    np.testing.assert_array_equal(grad_2, grad_spec)


def test_softmax_cross_entropy_gradient_for_unnormalised_targets():
    # Rows not summing to 1: the gradient is p * sum(y) - y, not p - y.
    z, _ = _logits_and_labels(0, 4, 3)
    target = np.random.default_rng(1).uniform(0, 2, (4, 3))
    assert check_loss(SoftmaxCrossEntropy(), z, target, eps=EPS) < TOL


@GRADCHECK_SETTINGS
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_mse_and_bce_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal(shape) * 2
    target = rng.standard_normal(shape)
    assert check_loss(MeanSquaredError(), pred, target, eps=EPS) < TOL
    soft = rng.uniform(0, 1, shape)
    assert check_loss(BinaryCrossEntropy(), pred, soft, eps=EPS) < TOL
    hard = rng.integers(0, 2, shape)
    assert check_loss(BinaryCrossEntropy(), pred, hard, eps=EPS) < TOL


# -------------------------------------------------------------------- values


def test_softmax_cross_entropy_matches_the_direct_formula():
    z, labels = _logits_and_labels(2, 5, 4)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(5), labels]))
    loss, dz = SoftmaxCrossEntropy()(z, labels)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_allclose(dz, (p - _one_hot(labels, 4)) / 5, rtol=1e-12)
    # One-hot targets give the same loss and gradient as the labels.
    loss_oh, dz_oh = SoftmaxCrossEntropy()(z, _one_hot(labels, 4))
    np.testing.assert_allclose(loss_oh, loss, rtol=1e-12)
    np.testing.assert_allclose(dz_oh, dz, rtol=1e-12)


def test_uniform_logits_cost_log_c():
    loss, _ = SoftmaxCrossEntropy()(np.zeros((3, 10)), np.array([0, 4, 9]))
    np.testing.assert_allclose(loss, np.log(10), rtol=1e-12)


def test_label_smoothing_follows_keras():
    z, labels = _logits_and_labels(3, 4, 5)
    s = 0.2
    y = _one_hot(labels, 5) * (1 - s) + s / 5
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = -np.mean(np.sum(y * log_p, axis=1))
    for target in (labels, _one_hot(labels, 5)):
        loss, dz = SoftmaxCrossEntropy(label_smoothing=s)(z, target)
        np.testing.assert_allclose(loss, expected, rtol=1e-12)
        np.testing.assert_allclose(dz, (np.exp(log_p) - y) / 4, rtol=1e-10)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dz = SoftmaxCrossEntropy()(z, np.array([2, 1]))
    # Sample 0 puts all mass on class 0 but the label is 2: loss 2e4 / 2 samples.
    np.testing.assert_allclose(loss, 1e4, rtol=1e-12)
    np.testing.assert_allclose(dz, [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-12)


def test_float32_in_float32_gradient_out():
    z, labels = _logits_and_labels(4, 6, 3)
    z32 = z.astype(np.float32)
    for loss_fn, target in (
        (SoftmaxCrossEntropy(0.1), labels),
        (MeanSquaredError(), np.ones_like(z)),
        (BinaryCrossEntropy(), np.ones_like(z)),
    ):
        value, grad = loss_fn(z32, target)
        assert grad.dtype == np.float32 and grad.shape == z.shape
        assert isinstance(value, float)
        np.testing.assert_allclose(value, loss_fn(z, target)[0], rtol=1e-5)


def test_probabilities_are_the_softmax():
    z, _ = _logits_and_labels(5, 4, 6, scale=30)
    p = SoftmaxCrossEntropy.probabilities(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))


def test_mse_is_keras_mean():
    pred = np.arange(6.0).reshape(2, 3)
    target = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    loss, grad = MeanSquaredError()(pred, target)
    # Keras: mean over the last axis (5/3 and 29/3), then over the batch.
    np.testing.assert_allclose(loss, (5 / 3 + 29 / 3) / 2, rtol=1e-12)
    np.testing.assert_allclose(grad, 2 * (pred - target) / 6, rtol=1e-12)


def test_bce_matches_the_probability_formula_and_is_stable():
    rng = np.random.default_rng(6)
    z, y = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    s = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(BinaryCrossEntropy()(z, y)[0], expected, rtol=1e-12)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = BinaryCrossEntropy()(np.array([1e4, -1e4]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(loss, 1e4, rtol=1e-12)
    np.testing.assert_allclose(grad, [0.5, -0.5], rtol=1e-12)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (np.array([0, 1, 3]), ValueError, r"\[0, 2\]"),
        (np.array([0, -1, 2]), ValueError, r"\[0, 2\]"),
        (np.array([0.0, 1.0, 2.0]), TypeError, "integers"),
        (np.array([0, 1]), ValueError, "expected 3 labels"),
        (np.zeros((3, 4)), ValueError, r"\(3, 3\)"),
        (np.zeros((2, 3)), ValueError, r"\(3, 3\)"),
        (np.zeros((3, 3, 1)), ValueError, "labels"),
        (-np.eye(3), ValueError, ">= 0"),
    ],
)
def test_softmax_cross_entropy_rejects_bad_targets(target, error, message):
    with pytest.raises(error, match=message):
        SoftmaxCrossEntropy()(np.zeros((3, 3)), target)


@pytest.mark.parametrize(
    ("pred", "error"),
    [
        (np.zeros(3), ValueError),
        (np.zeros((3, 3), dtype=np.int64), TypeError),
        ([[0.0, 1.0]], TypeError),
    ],
)
def test_softmax_cross_entropy_rejects_bad_predictions(pred, error):
    with pytest.raises(error, match="SoftmaxCrossEntropy"):
        SoftmaxCrossEntropy()(pred, np.array([0]))


def test_regression_losses_validate_shapes_and_ranges():
    with pytest.raises(ValueError, match=r"MeanSquaredError.*\(2, 3\)"):
        MeanSquaredError()(np.zeros((2, 3)), np.zeros((2,)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BinaryCrossEntropy()(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    for smoothing in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="label_smoothing"):
            SoftmaxCrossEntropy(smoothing)


# ------------------------------------------------------------------ registry


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("cross_entropy", SoftmaxCrossEntropy),
        ("softmax_cross_entropy", SoftmaxCrossEntropy),
        ("categorical_crossentropy", SoftmaxCrossEntropy),
        ("sparse_categorical_crossentropy", SoftmaxCrossEntropy),
        ("mse", MeanSquaredError),
        ("mean_squared_error", MeanSquaredError),
        ("binary_crossentropy", BinaryCrossEntropy),
        ("bce", BinaryCrossEntropy),
    ],
)
def test_get_by_name(name, cls):
    assert type(losses.get(name)) is cls


def test_get_passes_instances_and_rejects_unknowns():
    loss = SoftmaxCrossEntropy(0.1)
    assert losses.get(loss) is loss
    with pytest.raises(ValueError, match="mse") as err:
        losses.get("hinge")
    assert "hinge" in str(err.value)
    with pytest.raises(TypeError):
        losses.get(None)


def test_config_round_trip_through_json():
    for loss in (SoftmaxCrossEntropy(0.15), MeanSquaredError(), BinaryCrossEntropy()):
        spec = json.loads(json.dumps(losses.to_config(loss)))
        clone = losses.from_config(spec)
        assert type(clone) is type(loss)
        assert clone.get_config() == loss.get_config()
        assert clone.name == loss.name
    for bad in (
        {"class_name": "os.system", "config": {}},
        {"class_name": "MeanSquaredError"},
        {"class_name": "SoftmaxCrossEntropy", "config": {"smoothing": 0.1}},
    ):
        with pytest.raises(ValueError):
            losses.from_config(bad)
